// SPDX-License-Identifier: Apache-2.0
// eigen.hpp: Eigen adapters: lowbit's matrix types and views of Eigen matrices
// (gemm on Eigen matrices: gemm_eigen.hpp).
//
// lowbit computes on row-major data (K contiguous per token, W [N x K] contiguous per
// output channel, as torch.nn.Linear). matrixf is the row-major float matrix the layer
// API takes and returns. Passing a column-major Eigen::MatrixXf where an
// Eigen::Ref<const matrixf> is expected makes Eigen create a row-major temporary copy:
// correct, but a copy; keep activations in matrixf to avoid it.
#ifndef LOWBIT_EIGEN_HPP_
#define LOWBIT_EIGEN_HPP_

#include <Eigen/Core>
#include <cstdint>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

/// Row-major float matrix: activations [M x K], outputs [M x N], weights [N x K].
using matrixf = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
/// Row-major integer matrices for quantized activations and int32 GEMM results.
using matrix_u8 = Eigen::Matrix<std::uint8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using matrix_s8 = Eigen::Matrix<std::int8_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using matrix_s32 = Eigen::Matrix<std::int32_t, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using vectorf = Eigen::VectorXf;

/// A strided 2-D view of a row-major Eigen matrix (no copy).
template <class Scalar>
tensor_view<const Scalar> view(
    const Eigen::Ref<const Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>&
        m) {
  return tensor_view<const Scalar>(m.data(), {m.rows(), m.cols()}, {m.outerStride(), 1});
}
inline tensor_view<const float> view(const matrixf& m) { return view<float>(m); }

/// A span over a vector's coefficients (no copy).
inline span<const float> view(const vectorf& v) {
  return span<const float>(v.data(), static_cast<std::size_t>(v.size()));
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_EIGEN_HPP_
