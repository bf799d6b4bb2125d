// SPDX-License-Identifier: Apache-2.0
// arch/portable/kernels.hpp: the kernel table of isa::portable (detail/kernel_table.hpp).
//
// Baseline code only (SSE2 on x86-64, NEON on AArch64, whatever -march the user chose):
// plain C++ loops for the GEMM and weight-only tiles, xsimd for quantize, SSE2
// intrinsics for activation preparation on x86-64. Runs on every CPU.
//
//   gemm         s8_4x16c4__portable, s4_4x16c8__portable
//                (int32 kernels + the detail/gemm/raw_tile.hpp epilogue)
//   weight_only  f32s8_4x16c4__portable, f32s4_4x16c8__portable
//   quantize     xsimd batches at the build's baseline (arch/portable/quantize.hpp)
//   int4 pack    scalar (arch/portable/pack.hpp)
#ifndef LOWBIT_ARCH_PORTABLE_KERNELS_HPP_
#define LOWBIT_ARCH_PORTABLE_KERNELS_HPP_

#include "lowbit/arch/portable/gemm_f32_kernel.hpp"
#include "lowbit/arch/portable/gemm_kernel.hpp"
#include "lowbit/arch/portable/pack.hpp"
#include "lowbit/arch/portable/prepare.hpp"
#include "lowbit/arch/portable/quantize.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/gemm/raw_tile.hpp"
#include "lowbit/detail/kernel_table.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace portable {

template <detail::qstore S, bool Vec, bool Nan>
struct quantize_entry {
  static void run(const float* x, std::int64_t n, const float* inv, const float* zp,
                  const detail::qconst& c, std::uint8_t* out) noexcept {
    quantize_run<S == detail::qstore::s4, Vec, Nan>(x, n, inv, zp, qconst{c.inv, c.zp, c.lo, c.hi},
                                                    out);
  }
};

template <dtype T, bool Vec>
struct dequantize_entry {
  static void run(const std::uint8_t* q, std::int64_t n, const float* scale, const float* zp,
                  float s, float z, float* out) noexcept {
    dequantize_run<bits(T), is_signed(T), Vec>(q, n, scale, zp, s, z, out);
  }
};

constexpr detail::kernel_table make_table() noexcept {
  detail::kernel_table t;
  t.level = isa::portable;
  t.gemm = detail::raw_gemm_ukernels<gemm_kernels>("s8_4x16c4__portable", "s4_4x16c8__portable");
  t.weight_only =
      detail::f32_ukernels_of<gemm_f32_kernels>("f32s8_4x16c4__portable", "f32s4_4x16c8__portable");
  detail::fill_quantize<quantize_entry>(t.quant);
  detail::fill_dequantize<dequantize_entry>(t.quant);
  t.quant.find_nonfinite = &find_nonfinite;
  t.quant.pack_nibbles = &pack_nibbles;
  t.quant.unpack_nibbles = {{&unpack_nibbles<false>, &unpack_nibbles<true>}};
  t.prepare_row = &prepare_row;
  return t;
}

/// The portable table.
inline constexpr detail::kernel_table table = make_table();

}  // namespace portable
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ARCH_PORTABLE_KERNELS_HPP_
