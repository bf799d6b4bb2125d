// SPDX-License-Identifier: Apache-2.0
// arch/avx2/quantize.hpp: AVX2 quantize / dequantize runs (32 values a step).
//
// Same arithmetic as arch/avx512_vnni/quantize.hpp (vmulps, vroundps nearest-even,
// vaddps zp, clamp, vcvtps2dq), so bit-identical with detail::quantize_one. Tails
// shorter than a step go through the scalar rule itself.
//
// Narrowing 4 x 8 int32 to 32 bytes: vpackssdw then vpacksswb (int8) / vpackuswb
// (uint8) interleave 128-bit lanes, so a final vpermd (0,4,1,5,2,6,3,7) restores
// element order. Saturating packs are exact here: values are already clamped to
// the type's range.
#ifndef LOWBIT_ARCH_AVX2_QUANTIZE_HPP_
#define LOWBIT_ARCH_AVX2_QUANTIZE_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cmath>
#include <cstdint>

#include "lowbit/detail/quant/rounding.hpp"

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX2)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx2 {

struct qconst {
  float inv, zp, lo, hi;
};

/// Storage kinds of a quantize run.
enum class store_kind { s8, u8, nibble };

template <bool Vec, bool Nan>
inline __m256i quantize8(const float* x, const float* inv, const float* zp,
                         const qconst& c) noexcept {
  __m256 v = _mm256_loadu_ps(x);
  if (Nan) v = _mm256_blendv_ps(v, _mm256_setzero_ps(), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  const __m256 vinv = Vec ? _mm256_loadu_ps(inv) : _mm256_set1_ps(c.inv);
  const __m256 vzp = Vec ? _mm256_loadu_ps(zp) : _mm256_set1_ps(c.zp);
  v = _mm256_round_ps(_mm256_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  v = _mm256_add_ps(vzp, v);
  v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(c.lo)), _mm256_set1_ps(c.hi));
  return _mm256_cvtps_epi32(v);
}

template <bool Vec, bool Nan>
inline std::int32_t quantize_scalar(float v, const float* inv, const float* zp, std::int64_t i,
                                    const qconst& c) noexcept {
  if (Nan && std::isnan(v)) v = 0.0f;
  const float vi = Vec ? inv[i] : c.inv;
  const float vz = Vec ? zp[i] : c.zp;
  // Same as detail::quantize_one with a float zero point (exact integer).
  float r = vz + detail::round_half_even(v * vi);
  r = r < c.lo ? c.lo : r;
  r = r > c.hi ? c.hi : r;
  return static_cast<std::int32_t>(r);
}

/// n values -> bytes (s8/u8: n bytes; nibble: (n + 1) / 2 bytes, must start at an
/// even element, last high nibble zero when n is odd).
template <store_kind K, bool Vec, bool Nan>
inline void quantize_run(const float* x, std::int64_t n, const float* inv, const float* zp,
                         qconst c, std::uint8_t* out) noexcept {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const float* vi = inv + (Vec ? i : 0);
    const float* vz = zp + (Vec ? i : 0);
    const __m256i q0 = quantize8<Vec, Nan>(x + i, vi, vz, c);
    const __m256i q1 = quantize8<Vec, Nan>(x + i + 8, vi + (Vec ? 8 : 0), vz + (Vec ? 8 : 0), c);
    const __m256i q2 = quantize8<Vec, Nan>(x + i + 16, vi + (Vec ? 16 : 0), vz + (Vec ? 16 : 0), c);
    const __m256i q3 = quantize8<Vec, Nan>(x + i + 24, vi + (Vec ? 24 : 0), vz + (Vec ? 24 : 0), c);
    const __m256i w01 = _mm256_packs_epi32(q0, q1);
    const __m256i w23 = _mm256_packs_epi32(q2, q3);
    __m256i b = K == store_kind::u8 ? _mm256_packus_epi16(w01, w23) : _mm256_packs_epi16(w01, w23);
    b = _mm256_permutevar8x32_epi32(b, order);
    if (K != store_kind::nibble) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), b);
    } else {
      const __m256i w =
          _mm256_or_si256(_mm256_and_si256(b, _mm256_set1_epi16(0x000F)),
                          _mm256_and_si256(_mm256_srli_epi16(b, 4), _mm256_set1_epi16(0x00F0)));
      const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi16(w, w), 0x08);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i / 2), _mm256_castsi256_si128(p));
    }
  }
  for (; i < n; ++i) {
    const std::int32_t q = quantize_scalar<Vec, Nan>(x[i], inv, zp, i, c);
    if (K != store_kind::nibble) {
      out[i] = static_cast<std::uint8_t>(q & 0xFF);
    } else if (i % 2 == 0) {
      out[i / 2] = static_cast<std::uint8_t>(q & 0x0F);
    } else {
      out[i / 2] = static_cast<std::uint8_t>(out[i / 2] | ((q & 0x0F) << 4));
    }
  }
}

template <bool Vec>
inline void dequantize8(__m256i q, const float* scale, const float* zp, float s, float z,
                        float* out) noexcept {
  const __m256 vs = Vec ? _mm256_loadu_ps(scale) : _mm256_set1_ps(s);
  const __m256 vz = Vec ? _mm256_loadu_ps(zp) : _mm256_set1_ps(z);
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(q), vz), vs));
}

/// 8-bit run: n bytes -> n floats.
template <bool Signed, bool Vec>
inline void dequantize_run8(const std::uint8_t* q, std::int64_t n, const float* scale,
                            const float* zp, float s, float z, float* out) noexcept {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i));
    dequantize8<Vec>(Signed ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b),
                     scale + (Vec ? i : 0), zp + (Vec ? i : 0), s, z, out + i);
  }
  for (; i < n; ++i) {
    const std::int32_t v = Signed ? static_cast<std::int8_t>(q[i]) : q[i];
    out[i] =
        detail::dequantize_one(v, Vec ? scale[i] : s, static_cast<std::int32_t>(Vec ? zp[i] : z));
  }
}

/// INT4 run starting at an even element: (n + 1) / 2 bytes -> n floats.
template <bool Signed, bool Vec>
inline void dequantize_run4(const std::uint8_t* q, std::int64_t n, const float* scale,
                            const float* zp, float s, float z, float* out) noexcept {
  const __m128i nib = _mm_set1_epi8(0x0F);
  const __m128i eight = _mm_set1_epi8(8);
  std::int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + i / 2));
    __m128i lo = _mm_and_si128(b, nib);
    __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), nib);
    if (Signed) {
      lo = _mm_sub_epi8(_mm_xor_si128(lo, eight), eight);
      hi = _mm_sub_epi8(_mm_xor_si128(hi, eight), eight);
    }
    const __m128i e[2] = {_mm_unpacklo_epi8(lo, hi), _mm_unpackhi_epi8(lo, hi)};
    for (int h = 0; h < 2; ++h) {
      const __m128i a = e[h];
      const __m128i a8 = _mm_srli_si128(a, 8);
      const std::int64_t j = i + 16 * h;
      dequantize8<Vec>(Signed ? _mm256_cvtepi8_epi32(a) : _mm256_cvtepu8_epi32(a),
                       scale + (Vec ? j : 0), zp + (Vec ? j : 0), s, z, out + j);
      dequantize8<Vec>(Signed ? _mm256_cvtepi8_epi32(a8) : _mm256_cvtepu8_epi32(a8),
                       scale + (Vec ? j + 8 : 0), zp + (Vec ? j + 8 : 0), s, z, out + j + 8);
    }
  }
  for (; i < n; ++i) {
    int v = (q[i / 2] >> ((i % 2) * 4)) & 0x0F;
    if (Signed && v >= 8) v -= 16;
    out[i] =
        detail::dequantize_one(v, Vec ? scale[i] : s, static_cast<std::int32_t>(Vec ? zp[i] : z));
  }
}

/// Index of the first NaN/Inf in x[0, n), or -1.
inline std::int64_t find_nonfinite(const float* x, std::int64_t n) noexcept {
  const __m256i exp_mask = _mm256_set1_epi32(0x7F800000);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const int bad = _mm256_movemask_ps(
        _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(v, exp_mask), exp_mask)));
    if (bad) return i + __builtin_ctz(static_cast<unsigned>(bad));
  }
  for (; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

}  // namespace avx2
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX2_QUANTIZE_HPP_
