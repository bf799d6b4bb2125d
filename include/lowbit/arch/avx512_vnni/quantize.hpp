// SPDX-License-Identifier: Apache-2.0
// arch/avx512_vnni/quantize.hpp: AVX-512 quantize / dequantize runs.
//
// Only AVX512F/BW/VL are used (no VNNI): the folder is the dispatch level these
// kernels run at. Each "run" is a contiguous stretch of floats sharing one
// (inv_scale, zero_point) pair, or (Vec = true) with one pair per element, as for a
// per-channel axis that is the innermost dimension. Results are bit-identical with
// detail::quantize_one / dequantize_one (tested):
//
//   v = x * inv                      vmulps          (same float product)
//   v = roundscale(v, nearest-even)  vrndscaleps     (== nearbyint, default MXCSR)
//   v = min(max(v + zp, lo), hi)     vaddps/vmaxps/vminps
//   q = cvt(v)                       vcvtps2dq       (exact: v is an integer)
//
// Storage: 16 int32 -> 16 bytes with vpmovdb (values already in range). INT4: 32
// bytes b0..b31 viewed as 16 words w_i = b_2i | b_2i+1 << 8 give the byte
// (w & 0x0F) | ((w >> 4) & 0xF0), narrowed with vpmovwb: element 2i low nibble.
#ifndef LOWBIT_ARCH_AVX512_VNNI_QUANTIZE_HPP_
#define LOWBIT_ARCH_AVX512_VNNI_QUANTIZE_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX512)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx512_vnni {

struct qconst {
  float inv, zp, lo, hi;
};

template <bool Vec, bool Nan>
inline __m512i quantize16(const float* x, const float* inv, const float* zp, const qconst& c,
                          __mmask16 m) noexcept {
  __m512 v = _mm512_maskz_loadu_ps(m, x);
  if (Nan) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_setzero_ps());
  const __m512 vinv = Vec ? _mm512_maskz_loadu_ps(m, inv) : _mm512_set1_ps(c.inv);
  const __m512 vzp = Vec ? _mm512_maskz_loadu_ps(m, zp) : _mm512_set1_ps(c.zp);
  v = _mm512_roundscale_ps(_mm512_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm512_add_ps(vzp, v);
  v = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(c.lo)), _mm512_set1_ps(c.hi));
  return _mm512_cvtps_epi32(v);
}

/// 8-bit run: n values -> n bytes (int8 or uint8 two's-complement bytes).
template <bool Vec, bool Nan>
inline void quantize_run8(const float* x, std::int64_t n, const float* inv, const float* zp,
                          qconst c, std::uint8_t* out) noexcept {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i q =
        quantize16<Vec, Nan>(x + i, inv + (Vec ? i : 0), zp + (Vec ? i : 0), c, 0xFFFF);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(q));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512i q = quantize16<Vec, Nan>(x + i, inv + (Vec ? i : 0), zp + (Vec ? i : 0), c, m);
    _mm_mask_storeu_epi8(out + i, m, _mm512_cvtepi32_epi8(q));
  }
}

/// INT4 run starting at an even element: n values -> (n + 1) / 2 bytes, last high
/// nibble zero when n is odd.
template <bool Vec, bool Nan>
inline void quantize_run4(const float* x, std::int64_t n, const float* inv, const float* zp,
                          qconst c, std::uint8_t* out) noexcept {
  const __m256i lo_mask = _mm256_set1_epi16(0x000F);
  const __m256i hi_mask = _mm256_set1_epi16(0x00F0);
  for (std::int64_t i = 0; i < n; i += 32) {
    const std::int64_t left = n - i;
    const __mmask16 m0 = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
    const __mmask16 m1 = left >= 32   ? 0xFFFF
                         : left <= 16 ? 0
                                      : static_cast<__mmask16>((1u << (left - 16)) - 1);
    const __m128i b0 = _mm512_cvtepi32_epi8(
        quantize16<Vec, Nan>(x + i, inv + (Vec ? i : 0), zp + (Vec ? i : 0), c, m0));
    const __m128i b1 = _mm512_cvtepi32_epi8(
        quantize16<Vec, Nan>(x + i + 16, inv + (Vec ? i + 16 : 0), zp + (Vec ? i + 16 : 0), c, m1));
    __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(b0), b1, 1);
    const __mmask32 mb = left >= 32 ? 0xFFFFFFFFu : static_cast<__mmask32>((1ull << left) - 1);
    b = _mm256_maskz_mov_epi8(mb, b);  // lanes past n -> 0 (zero high nibble)
    const __m256i w = _mm256_or_si256(_mm256_and_si256(b, lo_mask),
                                      _mm256_and_si256(_mm256_srli_epi16(b, 4), hi_mask));
    const __m128i packed = _mm256_cvtepi16_epi8(w);
    if (left >= 32) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i / 2), packed);
    } else {
      const __mmask16 ms = static_cast<__mmask16>((1u << ((left + 1) / 2)) - 1);
      _mm_mask_storeu_epi8(out + i / 2, ms, packed);
    }
  }
}

/// 16 int32 -> float, (q - zp) * scale.
template <bool Vec>
inline void dequantize16(__m512i q, const float* scale, const float* zp, float s, float z,
                         float* out, __mmask16 m) noexcept {
  const __m512 vs = Vec ? _mm512_maskz_loadu_ps(m, scale) : _mm512_set1_ps(s);
  const __m512 vz = Vec ? _mm512_maskz_loadu_ps(m, zp) : _mm512_set1_ps(z);
  _mm512_mask_storeu_ps(out, m, _mm512_mul_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(q), vz), vs));
}

/// 8-bit run: n bytes -> n floats.
template <bool Signed, bool Vec>
inline void dequantize_run8(const std::uint8_t* q, std::int64_t n, const float* scale,
                            const float* zp, float s, float z, float* out) noexcept {
  for (std::int64_t i = 0; i < n; i += 16) {
    const std::int64_t left = n - i;
    const __mmask16 m = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
    const __m128i b = _mm_maskz_loadu_epi8(m, q + i);
    const __m512i v = Signed ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b);
    dequantize16<Vec>(v, scale + (Vec ? i : 0), zp + (Vec ? i : 0), s, z, out + i, m);
  }
}

/// INT4 run starting at an even element: (n + 1) / 2 bytes -> n floats.
template <bool Signed, bool Vec>
inline void dequantize_run4(const std::uint8_t* q, std::int64_t n, const float* scale,
                            const float* zp, float s, float z, float* out) noexcept {
  const __m128i nib = _mm_set1_epi8(0x0F);
  const __m128i eight = _mm_set1_epi8(8);
  for (std::int64_t i = 0; i < n; i += 32) {
    const std::int64_t left = n - i;
    const std::int64_t nbytes = left >= 32 ? 16 : (left + 1) / 2;
    const __m128i b = _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << nbytes) - 1), q + i / 2);
    __m128i lo = _mm_and_si128(b, nib);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
    if (Signed) {  // sign-extend a nibble: (v ^ 8) - 8
      lo = _mm_sub_epi8(_mm_xor_si128(lo, eight), eight);
      hi = _mm_sub_epi8(_mm_xor_si128(hi, eight), eight);
    }
    const __m128i e0 = _mm_unpacklo_epi8(lo, hi);  // elements 0..15
    const __m128i e1 = _mm_unpackhi_epi8(lo, hi);  // elements 16..31
    const __mmask16 m0 = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
    dequantize16<Vec>(Signed ? _mm512_cvtepi8_epi32(e0) : _mm512_cvtepu8_epi32(e0),
                      scale + (Vec ? i : 0), zp + (Vec ? i : 0), s, z, out + i, m0);
    if (left > 16) {
      const __mmask16 m1 = left >= 32 ? 0xFFFF : static_cast<__mmask16>((1u << (left - 16)) - 1);
      dequantize16<Vec>(Signed ? _mm512_cvtepi8_epi32(e1) : _mm512_cvtepu8_epi32(e1),
                        scale + (Vec ? i + 16 : 0), zp + (Vec ? i + 16 : 0), s, z, out + i + 16,
                        m1);
    }
  }
}

/// Index of the first NaN/Inf in x[0, n), or -1.
inline std::int64_t find_nonfinite(const float* x, std::int64_t n) noexcept {
  const __m512i exp_mask = _mm512_set1_epi32(0x7F800000);
  for (std::int64_t i = 0; i < n; i += 16) {
    const std::int64_t left = n - i;
    const __mmask16 m = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
    const __m512i v = _mm512_maskz_loadu_epi32(m, x + i);
    const __mmask16 bad = _mm512_mask_cmpeq_epi32_mask(m, _mm512_and_si512(v, exp_mask), exp_mask);
    if (bad) return i + __builtin_ctz(static_cast<unsigned>(bad));
  }
  return -1;
}

}  // namespace avx512_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX512_VNNI_QUANTIZE_HPP_
