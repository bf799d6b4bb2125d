// SPDX-License-Identifier: Apache-2.0
// arch/portable/prepare.hpp: activation rows into the GEMM kernels' u8 domain.
//
// d[k] = s[k] ^ flip (flip = 0x80 turns int8 a into the u8 a + 128, 0 copies uint8)
// and the sum of the bytes written, which the zero-point algebra needs
// (packed_weights.hpp). Baseline code: SSE2 on x86-64 (psadbw sums 16 bytes into two
// 64-bit lanes), scalar elsewhere.
#ifndef LOWBIT_ARCH_PORTABLE_PREPARE_HPP_
#define LOWBIT_ARCH_PORTABLE_PREPARE_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_ARCH_X86_64
#include <emmintrin.h>  // SSE2: x86-64's baseline
#endif

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace portable {

/// d[k] = s[k] ^ flip for k < n; returns sum_k d[k] (<= 255 * max_k < 2^31).
inline std::int32_t prepare_row(const std::uint8_t* s, std::uint8_t* d, std::int64_t n,
                                std::uint8_t flip) noexcept {
  std::int64_t k = 0;
  std::uint64_t sum = 0;
#if LOWBIT_ARCH_X86_64
  const __m128i f = _mm_set1_epi8(static_cast<char>(flip)), zero = _mm_setzero_si128();
  __m128i acc = zero;
  for (; k + 16 <= n; k += 16) {
    const __m128i v = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k)), f);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + k), v);
    acc = _mm_add_epi64(acc, _mm_sad_epu8(v, zero));
  }
  sum = static_cast<std::uint64_t>(_mm_cvtsi128_si64(acc)) +
        static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc)));
#endif
  for (; k < n; ++k) {
    d[k] = static_cast<std::uint8_t>(s[k] ^ flip);
    sum += d[k];
  }
  return static_cast<std::int32_t>(sum);
}

}  // namespace portable
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ARCH_PORTABLE_PREPARE_HPP_
