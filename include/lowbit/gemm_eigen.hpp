// SPDX-License-Identifier: Apache-2.0
// gemm_eigen.hpp: gemm() on uint8 activations held in an Eigen matrix, returning an
// Eigen matrix (int32 accumulators, or floats through any epilogue).
#ifndef LOWBIT_GEMM_EIGEN_HPP_
#define LOWBIT_GEMM_EIGEN_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/eigen.hpp"
#include "lowbit/gemm.hpp"

LOWBIT_BEGIN_NAMESPACE

/// gemm with uint8 activations in an Eigen matrix: returns the int32 accumulators.
inline matrix_s32 gemm_s32(const Eigen::Ref<const matrix_u8>& x, std::int32_t zero_point,
                           const packed_weights& w, const gemm_context& ctx = {}) {
  matrix_s32 y(x.rows(), w.n());
  gemm(activations::u8(x.data(), x.rows(), x.cols(), x.outerStride(), zero_point), w,
       epilogue::int32(), output(y.data(), w.n()), ctx);
  return y;
}

/// gemm with uint8 activations in an Eigen matrix and the f32 epilogue.
inline matrixf gemm_f32(const Eigen::Ref<const matrix_u8>& x, std::int32_t zero_point,
                        span<const float> scales, const packed_weights& w, const epilogue& e,
                        const gemm_context& ctx = {}) {
  matrixf y(x.rows(), w.n());
  gemm(activations::u8(x.data(), x.rows(), x.cols(), x.outerStride(), zero_point, scales), w, e,
       output(y.data(), w.n()), ctx);
  return y;
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_GEMM_EIGEN_HPP_
