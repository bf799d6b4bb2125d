// SPDX-License-Identifier: Apache-2.0
// arch/avx512_vnni/kernels.hpp: the kernel table of isa::avx512_vnni
// (detail/kernel_table.hpp).
//
//   gemm         s8_7x48c4__avx512vnni, s4_8x16c8__avx512vnni   fused tiles: zmm
//                vpdpbusd and the whole epilogue in registers
//                (arch/avx512_vnni/gemm_kernel.hpp)
//   weight_only  f32s8_4x16c4__avx512, f32s4_4x16c8__avx512 (zmm FMA)
//   quantize     16 values a step, AVX-512BW (arch/avx512_vnni/quantize.hpp)
//   int4 pack    the avx2 entries; prepare: the portable (SSE2) one
//
// Also here: ymm_test_table, the avx_vnni kernel body compiled with EVEX vpdpbusd
// (arch/avx512_vnni/gemm_kernel_ymm.hpp), so tests verify that body on AVX-512 CPUs
// without AVX-VNNI. Nothing dispatches to it.
#ifndef LOWBIT_ARCH_AVX512_VNNI_KERNELS_HPP_
#define LOWBIT_ARCH_AVX512_VNNI_KERNELS_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include "lowbit/arch/avx2/kernels.hpp"
#include "lowbit/arch/avx512_vnni/gemm_f32_kernel.hpp"
#include "lowbit/arch/avx512_vnni/gemm_kernel.hpp"
#include "lowbit/arch/avx512_vnni/gemm_kernel_ymm.hpp"
#include "lowbit/arch/avx512_vnni/quantize.hpp"
#include "lowbit/detail/gemm/raw_tile.hpp"
#include "lowbit/detail/kernel_table.hpp"

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX512)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx512_vnni {

template <detail::qstore S, bool Vec, bool Nan>
struct quantize_entry {
  static void run(const float* x, std::int64_t n, const float* inv, const float* zp,
                  const detail::qconst& c, std::uint8_t* out) noexcept {
    const qconst k{c.inv, c.zp, c.lo, c.hi};
    if constexpr (S == detail::qstore::s4) {
      quantize_run4<Vec, Nan>(x, n, inv, zp, k, out);
    } else {  // vpmovdb stores the low byte: right for int8 and uint8 alike
      quantize_run8<Vec, Nan>(x, n, inv, zp, k, out);
    }
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

}  // namespace avx512_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx512_vnni {

constexpr detail::kernel_table make_table() noexcept {
  detail::kernel_table t;
  t.level = isa::avx512_vnni;
  t.gemm = detail::gemm_ukernels_of<gemm_kernels>("s8_7x48c4__avx512vnni", "s4_8x16c8__avx512vnni");
  t.weight_only =
      detail::f32_ukernels_of<gemm_f32_kernels>("f32s8_4x16c4__avx512", "f32s4_4x16c8__avx512");
  detail::fill_quantize<quantize_entry>(t.quant);
  detail::fill_dequantize<dequantize_entry>(t.quant);
  t.quant.find_nonfinite = &find_nonfinite;
  t.quant.pack_nibbles = &avx2::pack_nibbles;
  t.quant.unpack_nibbles = {{&avx2::unpack_nibbles<false>, &avx2::unpack_nibbles<true>}};
  t.prepare_row = &portable::prepare_row;
  return t;
}

/// The avx512_vnni table.
inline constexpr detail::kernel_table table = make_table();

constexpr detail::kernel_table make_ymm_test_table() noexcept {
  detail::kernel_table t = table;
  t.gemm = detail::raw_gemm_ukernels<ymm::gemm_kernels>("s8_4x16c4__avx512vnni_ymm",
                                                        "s4_4x16c8__avx512vnni_ymm");
  return t;
}

/// Tests only: the avx_vnni kernel body with EVEX encoding (see the file comment).
inline constexpr detail::kernel_table ymm_test_table = make_ymm_test_table();

}  // namespace avx512_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX512_VNNI_KERNELS_HPP_
