// SPDX-License-Identifier: Apache-2.0
// arch/avx512_vnni/gemm_f32_kernel.hpp: weight-only f32 x packed int8/int4 microkernels.
//
// A packed row (64 bytes) is 16 dwords, dword j = 4 K-bytes of channel j. Byte i of
// every dword, sign-extended to int32, is one shift pair: (v << (24 - 8i)) >>a 24;
// for INT4, nibble i: (v << (28 - 4i)) >>a 28. Then vcvtdq2ps and one FMA per 16 MACs:
//
//   zmm0..zmm3   acc[r]: 16 channels of row r (float)
//   zmm4         v: packed row;  zmm5: widened weights for one K; zmm6: x[r][k] broadcast
//
// Deterministic order: for each lane, k ascending.
#ifndef LOWBIT_ARCH_AVX512_VNNI_GEMM_F32_KERNEL_HPP_
#define LOWBIT_ARCH_AVX512_VNNI_GEMM_F32_KERNEL_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX512_VNNI)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx512_vnni {

struct gemm_f32_kernels {
  static constexpr int mr = 4;

  template <int MR, int Bits, int Shl>
  static void step(const float* x, std::int64_t ldx, std::int64_t kk, __m512i v,
                   __m512 acc[MR]) noexcept {
    const __m512 w = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, Shl), 32 - Bits));
    for (int r = 0; r < MR; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r * ldx + kk]), w, acc[r]);
  }

  template <int MR>
  static void s8(const float* x, std::int64_t ldx, const std::uint8_t* b, std::int64_t k,
                 float* c) noexcept {
    __m512 acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
    std::int64_t k4 = 0;
    for (; 4 * k4 + 4 <= k; ++k4) {
      const __m512i v = _mm512_load_si512(b + k4 * 64);
      step<MR, 8, 24>(x, ldx, 4 * k4 + 0, v, acc);
      step<MR, 8, 16>(x, ldx, 4 * k4 + 1, v, acc);
      step<MR, 8, 8>(x, ldx, 4 * k4 + 2, v, acc);
      step<MR, 8, 0>(x, ldx, 4 * k4 + 3, v, acc);
    }
    if (4 * k4 < k) {  // ragged K: the packed row is zero-padded, x is not
      const __m512i v = _mm512_load_si512(b + k4 * 64);
      const std::int64_t left = k - 4 * k4;
      step<MR, 8, 24>(x, ldx, 4 * k4, v, acc);
      if (left > 1) step<MR, 8, 16>(x, ldx, 4 * k4 + 1, v, acc);
      if (left > 2) step<MR, 8, 8>(x, ldx, 4 * k4 + 2, v, acc);
    }
    for (int r = 0; r < MR; ++r) _mm512_storeu_ps(c + r * 16, acc[r]);
  }

  template <int MR>
  static void s4(const float* x, std::int64_t ldx, const std::uint8_t* b, std::int64_t k8b,
                 std::int64_t k8e, float* c) noexcept {
    __m512 acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_ps();
    for (std::int64_t k8 = k8b; k8 < k8e; ++k8) {
      // stored nibbles are w + 8: ^ 0x88 gives w's two's complement nibbles back
      const __m512i v = _mm512_xor_si512(_mm512_load_si512(b + k8 * 64),
                                         _mm512_set1_epi8(static_cast<char>(0x88)));
      const std::int64_t k0 = 8 * k8;
      step<MR, 4, 28>(x, ldx, k0 + 0, v, acc);  // low nibble of byte 0
      step<MR, 4, 20>(x, ldx, k0 + 1, v, acc);
      step<MR, 4, 12>(x, ldx, k0 + 2, v, acc);
      step<MR, 4, 4>(x, ldx, k0 + 3, v, acc);
      step<MR, 4, 24>(x, ldx, k0 + 4, v, acc);  // high nibble of byte 0
      step<MR, 4, 16>(x, ldx, k0 + 5, v, acc);
      step<MR, 4, 8>(x, ldx, k0 + 6, v, acc);
      step<MR, 4, 0>(x, ldx, k0 + 7, v, acc);
    }
    for (int r = 0; r < MR; ++r) _mm512_storeu_ps(c + r * 16, acc[r]);
  }
};

}  // namespace avx512_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX512_VNNI_GEMM_F32_KERNEL_HPP_
