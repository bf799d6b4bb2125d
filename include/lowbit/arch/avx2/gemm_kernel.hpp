// SPDX-License-Identifier: Apache-2.0
// arch/avx2/gemm_kernel.hpp: exact AVX2 microkernels, 2 rows x 16 channels.
//
// Why not vpmaddubsw: it adds two u8 x s8 products into a SATURATING int16, and
// 255 * 127 * 2 = 64770 > 32767, so full-range data gives wrong sums (oneDNN
// int8_computations.md; PyTorch answers with reduce_range). lowbit widens instead,
// like ruy: weights are sign-extended to int16 (vpmovsxbw), activations
// zero-extended (vpmovzxbw), and vpmaddwd adds pairs of int16 products into int32,
// which is exact (|pair| <= 2 * 255 * 128 = 65280).
//
// Register map (s8): a packed row is 64 bytes = 4 quarters of 4 channels x 4 K.
//
//   ymm0..ymm3   acc[0][q]  row 0, quarter q: lanes | c0:k01 c0:k23 c1:k01 c1:k23 | c2.. c3.. |
//   ymm4..ymm7   acc[1][q]  row 1
//   ymm8..ymm11  w[q] = vpmovsxbw(16 bytes of quarter q): 4 channels x 4 K as int16
//   ymm12        a = vpmovzxbw(broadcast of a[r][4k4 .. 4k4+3]): (a0 a1 a2 a3) x 4
//
//   per k4:  acc[r][q] += vpmaddwd(w[q], a[r])
//   end:     vphaddd pairs (k01 + k23), vpermq 0xD8 restores channel order.
#ifndef LOWBIT_ARCH_AVX2_GEMM_KERNEL_HPP_
#define LOWBIT_ARCH_AVX2_GEMM_KERNEL_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>
#include <cstring>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX2)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx2 {

/// p[0..3] as one int32 (unaligned).
inline std::int32_t load4(const std::uint8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

/// (a0 a1 a2 a3) repeated 4 times, zero-extended to 16 int16.
inline __m256i widen_a4(const std::uint8_t* p) noexcept {
  return _mm256_cvtepu8_epi16(_mm_set1_epi32(load4(p)));
}

/// acc[q] (4 quarters, 2 partial sums per channel) -> 16 int32 in channel order.
inline void store_row(const __m256i acc[4], std::int32_t* c) noexcept {
  const __m256i lo = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[0], acc[1]), 0xD8);
  const __m256i hi = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[2], acc[3]), 0xD8);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c), lo);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + 8), hi);
}

struct gemm_kernels {
  static constexpr int mr = 2;

  template <int MR>
  static void s8(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b, std::int64_t kb,
                 std::int64_t ke, std::int32_t* c) noexcept {
    __m256i acc[MR][4];
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_setzero_si256();
    for (std::int64_t k4 = kb; k4 < ke; ++k4) {
      __m256i w[4];
      for (int q = 0; q < 4; ++q)
        w[q] = _mm256_cvtepi8_epi16(
            _mm_load_si128(reinterpret_cast<const __m128i*>(b + k4 * 64 + 16 * q)));
      for (int r = 0; r < MR; ++r) {
        const __m256i av = widen_a4(a + r * lda + 4 * k4);
        for (int q = 0; q < 4; ++q)
          acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(w[q], av));
      }
    }
    for (int r = 0; r < MR; ++r) store_row(acc[r], c + r * 16);
  }

  template <int MR>
  static void s4(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b, std::int64_t kb,
                 std::int64_t ke, std::int32_t* c) noexcept {
    const __m128i nib = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
    __m256i acc[MR][4];
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_setzero_si256();
    for (std::int64_t k8 = kb; k8 < ke; ++k8) {
      __m256i wl[4], wh[4];
      for (int q = 0; q < 4; ++q) {
        const __m128i v = _mm_load_si128(reinterpret_cast<const __m128i*>(b + k8 * 64 + 16 * q));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(v, nib), eight);  // stored w + 8
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), nib), eight);
        wl[q] = _mm256_cvtepi8_epi16(lo);
        wh[q] = _mm256_cvtepi8_epi16(hi);
      }
      for (int r = 0; r < MR; ++r) {
        const __m256i a0 = widen_a4(a + r * lda + 8 * k8);
        const __m256i a1 = widen_a4(a + r * lda + 8 * k8 + 4);
        for (int q = 0; q < 4; ++q) {
          acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(wl[q], a0));
          acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(wh[q], a1));
        }
      }
    }
    for (int r = 0; r < MR; ++r) store_row(acc[r], c + r * 16);
  }
};

}  // namespace avx2
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX2_GEMM_KERNEL_HPP_
