// SPDX-License-Identifier: Apache-2.0
// layers/fp32_gemm.hpp: which float GEMM lowbit::float_linear runs.
//
// float_linear is the fp32 baseline the quantized layers are compared with, so it
// should be the fastest float GEMM the user has, not Eigen compiled for whatever
// -march the including file happened to use (x86-64's default is SSE2: a third of what
// an AVX2 + FMA BLAS runs). By default float_linear runs Eigen in the caller's
// translation unit; set_fp32_gemm() hands it another GEMM for the whole process, e.g.
// cblas_sgemm or Eigen built with -march=native in a translation unit of its own
// (examples/support/fp32_native.cpp does both). lowbit itself never links a BLAS.
//
// The contract: y[m x n] = x[m x k] * w[n x k]^T, row-major, leading dimensions in
// elements, y fully overwritten (float_linear adds the bias afterwards); `threads` is
// a hint (gemm_context::threads). Called with m, n, k >= 1.
#ifndef LOWBIT_LAYERS_FP32_GEMM_HPP_
#define LOWBIT_LAYERS_FP32_GEMM_HPP_

#include <atomic>
#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE

/// y = x * w^T (see the file comment).
using fp32_gemm_fn = void (*)(std::int64_t m, std::int64_t n, std::int64_t k, const float* x,
                              std::int64_t ldx, const float* w, std::int64_t ldw, float* y,
                              std::int64_t ldy, int threads);

/// A float GEMM and the name float_linear::describe() and the examples print for it.
struct fp32_gemm_backend {
  fp32_gemm_fn run = nullptr;  ///< null: Eigen in the caller's translation unit
  const char* name = "eigen";  ///< e.g. "openblas Haswell", "eigen -march=native (AVX2 FMA)"
};

namespace detail {
inline std::atomic<const fp32_gemm_backend*>& fp32_gemm_slot() noexcept {
  static std::atomic<const fp32_gemm_backend*> slot{nullptr};
  return slot;
}
}  // namespace detail

/// Makes every float_linear of the process run `b` (a pointer to an object that
/// outlives its use, typically a static). Null restores the default (Eigen).
inline void set_fp32_gemm(const fp32_gemm_backend* b) noexcept {
  detail::fp32_gemm_slot().store(b, std::memory_order_release);
}

/// The float GEMM float_linear runs now.
inline fp32_gemm_backend fp32_gemm() noexcept {
  const fp32_gemm_backend* b = detail::fp32_gemm_slot().load(std::memory_order_acquire);
  return b != nullptr ? *b : fp32_gemm_backend{};
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_LAYERS_FP32_GEMM_HPP_
