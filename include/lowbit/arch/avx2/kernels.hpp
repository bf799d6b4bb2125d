// SPDX-License-Identifier: Apache-2.0
// arch/avx2/kernels.hpp: the kernel table of isa::avx2 (detail/kernel_table.hpp).
//
//   gemm         s8_4x16c4__avx2_sign   vpmaddubsw with the sign trick; a panel holding a -128
//                                      weight runs the int16 kernel s8_2x16c4__avx2
//                s8_6x16c2__avx2_i16    from M = 8: int16 activations and panels, vpmaddwd
//                s8_4x16c4__avx2_u7     any M, when every activation byte is < 128
//                s4_4x16c8__avx2        vpmaddubsw on the stored w + 8, int16 sums
//                (arch/avx2/gemm_tiles.hpp; epilogue in C++, detail/gemm/raw_tile.hpp)
//   weight_only  f32s8_4x16c4__avx2, f32s4_4x16c8__avx2 (FMA)
//   quantize     32 values a step (arch/avx2/quantize.hpp)
//   int4 pack    32 values a step (arch/avx2/pack.hpp)
//   prepare      the portable (SSE2) row preparation
#ifndef LOWBIT_ARCH_AVX2_KERNELS_HPP_
#define LOWBIT_ARCH_AVX2_KERNELS_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include "lowbit/arch/avx2/gemm_f32_kernel.hpp"
#include "lowbit/arch/avx2/gemm_tiles.hpp"
#include "lowbit/arch/avx2/pack.hpp"
#include "lowbit/arch/avx2/quantize.hpp"
#include "lowbit/arch/portable/prepare.hpp"
#include "lowbit/detail/gemm/raw_tile.hpp"
#include "lowbit/detail/kernel_table.hpp"

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX2)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx2 {

template <detail::qstore S, bool Vec, bool Nan>
struct quantize_entry {
  static void run(const float* x, std::int64_t n, const float* inv, const float* zp,
                  const detail::qconst& c, std::uint8_t* out) noexcept {
    constexpr store_kind K = S == detail::qstore::s4   ? store_kind::nibble
                             : S == detail::qstore::u8 ? store_kind::u8
                                                       : store_kind::s8;
    quantize_run<K, Vec, Nan>(x, n, inv, zp, qconst{c.inv, c.zp, c.lo, c.hi}, out);
  }
};

template <dtype T, bool Vec>
struct dequantize_entry {
  static void run(const std::uint8_t* q, std::int64_t n, const float* scale, const float* zp,
                  float s, float z, float* out) noexcept {
    if constexpr (bits(T) == 8) {
      dequantize_run8<is_signed(T), Vec>(q, n, scale, zp, s, z, out);
    } else {
      dequantize_run4<is_signed(T), Vec>(q, n, scale, zp, s, z, out);
    }
  }
};

}  // namespace avx2
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx2 {

/// The quantize, dequantize and pack entries, shared with the avx_vnni table.
constexpr void fill_quant(detail::quant_ukernels& q) noexcept {
  detail::fill_quantize<quantize_entry>(q);
  detail::fill_dequantize<dequantize_entry>(q);
  q.find_nonfinite = &find_nonfinite;
  q.pack_nibbles = &pack_nibbles;
  q.unpack_nibbles = {{&unpack_nibbles<false>, &unpack_nibbles<true>}};
}

constexpr detail::kernel_table make_table() noexcept {
  detail::kernel_table t;
  t.level = isa::avx2;
  t.gemm = detail::gemm_ukernels_of<gemm_tiles>("s8_4x16c4__avx2_sign", "s4_4x16c8__avx2");
  detail::add_wide_route<gemm_tiles>(t.gemm, "s8_6x16c2__avx2_i16");
  t.gemm.s8_u7_name = "s8_4x16c4__avx2_u7";
  t.weight_only =
      detail::f32_ukernels_of<gemm_f32_kernels>("f32s8_4x16c4__avx2", "f32s4_4x16c8__avx2");
  fill_quant(t.quant);
  t.prepare_row = &portable::prepare_row;
  return t;
}

/// The avx2 table.
inline constexpr detail::kernel_table table = make_table();

}  // namespace avx2
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX2_KERNELS_HPP_
