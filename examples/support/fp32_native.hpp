// SPDX-License-Identifier: Apache-2.0
// support/fp32_native.hpp: the FP32 baseline of the comparison examples.
//
// The quantized rows are compared with the fastest float GEMM a user of this machine
// would have: OpenBLAS when CMake found it (cmake/install_deps.sh --peers), else Eigen
// compiled with -march=native in support/fp32_native.cpp alone (Eigen in the example
// sources themselves is built for the x86-64 baseline, SSE2, and would flatter the
// quantized rows three times over on an AVX2 machine). use_native_fp32() installs it
// for every lowbit::float_linear of the process (lowbit/layers/fp32_gemm.hpp).
#ifndef LOWBIT_EXAMPLES_SUPPORT_FP32_NATIVE_HPP_
#define LOWBIT_EXAMPLES_SUPPORT_FP32_NATIVE_HPP_

#include <string>

#include "lowbit/gemm.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/layers/fp32_gemm.hpp"

namespace example {

/// The baseline GEMM; its name says which (e.g. "openblas Haswell",
/// "eigen 3.4.0 -march=native (AVX SSE4.2 ... FMA)").
const lowbit::fp32_gemm_backend& native_fp32();

/// lowbit::set_fp32_gemm(&native_fp32()); returns its name.
inline const char* use_native_fp32() {
  lowbit::set_fp32_gemm(&native_fp32());
  return native_fp32().name;
}

/// What ran on the quantized side, for the examples' headers: the ISA and the GEMM
/// kernels of its table, e.g. "avx2: s8_4x16c4__avx2_sign (M >= 8: s8_6x16c2__avx2_i16;
/// activations < 128: s8_4x16c4__avx2_u7), s4_4x16c8__avx2".
inline std::string gemm_kernels_line() {
  const lowbit::isa i = lowbit::best_isa();
  const lowbit::gemm_kernel_names k = lowbit::gemm_kernels(i);
  std::string s = std::string(lowbit::to_string(i)) + ": " + k.s8;
  std::string extra;
  if (k.s8_wide != nullptr)
    extra += "M >= " + std::to_string(k.s8_wide_min_rows) + ": " + k.s8_wide;
  if (k.s8_u7 != nullptr)
    extra += (extra.empty() ? "" : "; ") + std::string("activations < 128: ") + k.s8_u7;
  if (!extra.empty()) s += " (" + extra + ")";
  return s + ", " + k.s4;
}

}  // namespace example

#endif  // LOWBIT_EXAMPLES_SUPPORT_FP32_NATIVE_HPP_
