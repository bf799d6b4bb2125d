// SPDX-License-Identifier: Apache-2.0
// arch/avx2/pack.hpp: INT4 nibble packing, 32 values a step (pack.hpp has the layout).
// Each function handles a prefix and returns how many elements it did; the caller
// finishes the tail with the scalar rule.
#ifndef LOWBIT_ARCH_AVX2_PACK_HPP_
#define LOWBIT_ARCH_AVX2_PACK_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX2)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx2 {

/// 32 nibble values (one per byte) -> 16 packed bytes, per step; returns elements done.
inline std::int64_t pack_nibbles(const std::uint8_t* in, std::int64_t n,
                                 std::uint8_t* out) noexcept {
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
    const __m256i w =
        _mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi16(0x000F)),
                        _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi16(0x00F0)));
    const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i / 2), _mm256_castsi256_si128(p));
  }
  return i;
}

/// 16 packed bytes -> 32 values (sign-extended when Signed), per step.
template <bool Signed>
inline std::int64_t unpack_nibbles(const std::uint8_t* in, std::int64_t n,
                                   std::uint8_t* out) noexcept {
  const __m128i nib = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i / 2));
    __m128i lo = _mm_and_si128(b, nib);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
    if (Signed) {
      lo = _mm_sub_epi8(_mm_xor_si128(lo, eight), eight);
      hi = _mm_sub_epi8(_mm_xor_si128(hi, eight), eight);
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_unpacklo_epi8(lo, hi));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 16), _mm_unpackhi_epi8(lo, hi));
  }
  return i;
}

}  // namespace avx2
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET
#endif  // LOWBIT_HAVE_X86_DISPATCH

#endif  // LOWBIT_ARCH_AVX2_PACK_HPP_
