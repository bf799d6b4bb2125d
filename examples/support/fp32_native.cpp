// SPDX-License-Identifier: Apache-2.0
// support/fp32_native.cpp: the examples' FP32 GEMM (see fp32_native.hpp). Compiled on
// its own, with -march=native when Eigen is the baseline (examples/CMakeLists.txt).
#include "support/fp32_native.hpp"

#include <cstdint>
#include <string>

#if LOWBIT_EXAMPLES_OPENBLAS
#include <cblas.h>  // OpenBLAS's: openblas_set_num_threads, openblas_get_corename
#else
// Eigen here is compiled for this machine, Eigen in the other translation units for the
// build's baseline: the same inline functions with different code. Renaming the
// namespace keeps the two apart (no ODR clash, whichever copy the linker keeps).
#define Eigen lowbit_examples_native_eigen
#include <Eigen/Core>
#endif

namespace example {
namespace {

#if LOWBIT_EXAMPLES_OPENBLAS

void run(std::int64_t m, std::int64_t n, std::int64_t k, const float* x, std::int64_t ldx,
         const float* w, std::int64_t ldw, float* y, std::int64_t ldy, int threads) {
  openblas_set_num_threads(threads < 1 ? 1 : threads);
  if (m == 1) {  // OpenBLAS's GEMM at M = 1 is slower than its GEMV
    cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<blasint>(n), static_cast<blasint>(k), 1.0f,
                w, static_cast<blasint>(ldw), x, 1, 0.0f, y, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, x, static_cast<blasint>(ldx),
              w, static_cast<blasint>(ldw), 0.0f, y, static_cast<blasint>(ldy));
}

std::string name() { return std::string("openblas ") + openblas_get_corename(); }

#else

void run(std::int64_t m, std::int64_t n, std::int64_t k, const float* x, std::int64_t ldx,
         const float* w, std::int64_t ldw, float* y, std::int64_t ldy, int /*threads*/) {
  using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using stride = Eigen::OuterStride<>;
  const Eigen::Map<const matrix, 0, stride> xm(x, m, k, stride(ldx));
  const Eigen::Map<const matrix, 0, stride> wm(w, n, k, stride(ldw));
  Eigen::Map<matrix, 0, stride> ym(y, m, n, stride(ldy));
  ym.noalias() = xm * wm.transpose();
}

std::string name() {
  return "eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." +
         std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION) +
#if LOWBIT_EXAMPLES_MARCH_NATIVE
         " -march=native"
#else
         ""
#endif
         " (" +
         Eigen::SimdInstructionSetsInUse() + ")";
}

#endif

}  // namespace

const lowbit::fp32_gemm_backend& native_fp32() {
  static const std::string label = name();
  static const lowbit::fp32_gemm_backend backend{&run, label.c_str()};
  return backend;
}

}  // namespace example
