// SPDX-License-Identifier: Apache-2.0
// arch/avx512_vnni/gemm_kernel.hpp: zmm vpdpbusd microkernels, MR rows x 16 channels.
//
// Register map (s8, MR = 8):
//
//   zmm0..zmm7    acc[r]: int32 lanes = channels n0 .. n0+15 of row r
//   zmm8          w: one packed row, 16 channels x 4 K bytes (s8)
//   zmm9          a: a[r][4k4 .. 4k4+3] broadcast to all 16 lanes (vpbroadcastd)
//
//   per k4:  w = load(b + 64 k4);  for r: acc[r] = vpdpbusd(acc[r], bcast(a[r]), w)
//
// vpdpbusd multiplies u8 (activations) by s8 (weights) and adds the four products of
// each lane to its int32 exactly: no int16 intermediate, no saturation (vpdpbusds is
// the saturating one, not used). s4: one 64-byte load gives two s8 rows, the low and
// high nibbles, sign-extended with (v ^ 8) - 8 in bytes.
#ifndef LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_HPP_
#define LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_HPP_

#include "lowbit/detail/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>
#include <cstring>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX512_VNNI)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx512_vnni {

inline __m512i bcast4(const std::uint8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

struct gemm_kernels {
  static constexpr int mr = 8;

  template <int MR>
  static void s8(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b, std::int64_t kb,
                 std::int64_t ke, std::int32_t* c) noexcept {
    __m512i acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_si512();
    for (std::int64_t k4 = kb; k4 < ke; ++k4) {
      const __m512i w = _mm512_load_si512(b + k4 * 64);
      for (int r = 0; r < MR; ++r)
        acc[r] = _mm512_dpbusd_epi32(acc[r], bcast4(a + r * lda + 4 * k4), w);
    }
    for (int r = 0; r < MR; ++r) _mm512_storeu_si512(c + r * 16, acc[r]);
  }

  template <int MR>
  static void s4(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b, std::int64_t kb,
                 std::int64_t ke, std::int32_t* c) noexcept {
    const __m512i nib = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    __m512i acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_si512();
    for (std::int64_t k8 = kb; k8 < ke; ++k8) {
      const __m512i v = _mm512_load_si512(b + k8 * 64);
      const __m512i lo = _mm512_sub_epi8(_mm512_xor_si512(_mm512_and_si512(v, nib), eight), eight);
      const __m512i hi = _mm512_sub_epi8(
          _mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi16(v, 4), nib), eight), eight);
      for (int r = 0; r < MR; ++r) {
        const std::uint8_t* ar = a + r * lda + 8 * k8;
        acc[r] = _mm512_dpbusd_epi32(acc[r], bcast4(ar), lo);
        acc[r] = _mm512_dpbusd_epi32(acc[r], bcast4(ar + 4), hi);
      }
    }
    for (int r = 0; r < MR; ++r) _mm512_storeu_si512(c + r * 16, acc[r]);
  }
};

}  // namespace avx512_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_HPP_
