// SPDX-License-Identifier: Apache-2.0
// pack.hpp: portable INT4 nibble packing (two values per byte).
//
// Layout: element 2i in the LOW nibble of byte i, element 2i+1 in the high nibble
// (PyTorch quint4x2, ONNX int4/uint4). Signed values are two's complement nibbles
// in [-8, 7]; unsigned in [0, 15]. An odd count leaves the last high nibble zero.
// This is the interchange layout of quantized tensors and files; the GEMM repacks
// weights into its own kernel-specific layout (gemm.hpp), which is private.
//
// Errors: a value outside the nibble range (the message names its index and value)
// or an output buffer too small; nothing is written on error.
#ifndef LOWBIT_PACK_HPP_
#define LOWBIT_PACK_HPP_

#include <cstdint>

#include "lowbit/detail/macros.hpp"
#include "lowbit/error.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/view.hpp"

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

LOWBIT_BEGIN_NAMESPACE
namespace detail {

inline bool pack_fast_path() noexcept {
#if LOWBIT_HAVE_X86_DISPATCH
  return best_isa() >= isa::avx2;
#else
  return false;
#endif
}

inline void pack_nibbles(const std::uint8_t* in, std::int64_t n, std::uint8_t* out) noexcept {
  std::int64_t i = 0;
#if LOWBIT_HAVE_X86_DISPATCH
  if (pack_fast_path()) i = arch::avx2::pack_nibbles(in, n, out);
#endif
  for (; i < n; i += 2) {
    const int lo = in[i] & 0x0F;
    const int hi = i + 1 < n ? (in[i + 1] & 0x0F) : 0;
    out[i / 2] = static_cast<std::uint8_t>(lo | (hi << 4));
  }
}

template <bool Signed>
inline void unpack_nibbles(const std::uint8_t* in, std::int64_t n, std::uint8_t* out) noexcept {
  std::int64_t i = 0;
#if LOWBIT_HAVE_X86_DISPATCH
  if (pack_fast_path()) i = arch::avx2::unpack_nibbles<Signed>(in, n, out);
#endif
  for (; i < n; ++i) {
    int v = (in[i / 2] >> ((i % 2) * 4)) & 0x0F;
    if (Signed && v >= 8) v -= 16;
    out[i] = static_cast<std::uint8_t>(v);
  }
}

inline void check_pack_sizes(std::size_t n, std::size_t out, const char* who) {
  if (out < (n + 1) / 2)
    fail(who, ": output buffer too small: ", n, " values need ", (n + 1) / 2, " bytes, got ", out);
}

}  // namespace detail

/// Packs signed int4 values (each in [-8, 7]) two per byte.
inline void pack_int4(span<const std::int8_t> values, span<std::uint8_t> out) {
  detail::check_pack_sizes(values.size(), out.size(), "pack_int4");
  // min/max first (a vectorizable reduction); find the index only on failure
  std::int8_t lo = 0, hi = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    lo = values[i] < lo ? values[i] : lo;
    hi = values[i] > hi ? values[i] : hi;
  }
  if (lo < -8 || hi > 7)
    for (std::size_t i = 0; i < values.size(); ++i)
      if (values[i] < -8 || values[i] > 7)
        detail::fail("pack_int4: value ", int{values[i]}, " at index ", i, " outside [-8, 7]");
  detail::pack_nibbles(reinterpret_cast<const std::uint8_t*>(values.data()),
                       static_cast<std::int64_t>(values.size()), out.data());
}

/// Packs unsigned int4 values (each in [0, 15]) two per byte.
inline void pack_uint4(span<const std::uint8_t> values, span<std::uint8_t> out) {
  detail::check_pack_sizes(values.size(), out.size(), "pack_uint4");
  std::uint8_t hi = 0;
  for (std::size_t i = 0; i < values.size(); ++i) hi = values[i] > hi ? values[i] : hi;
  if (hi > 15)
    for (std::size_t i = 0; i < values.size(); ++i)
      if (values[i] > 15)
        detail::fail("pack_uint4: value ", int{values[i]}, " at index ", i, " outside [0, 15]");
  detail::pack_nibbles(values.data(), static_cast<std::int64_t>(values.size()), out.data());
}

/// Unpacks out.size() signed int4 values from `packed`.
inline void unpack_int4(span<const std::uint8_t> packed, span<std::int8_t> out) {
  if (packed.size() < (out.size() + 1) / 2)
    detail::fail("unpack_int4: ", out.size(), " values need ", (out.size() + 1) / 2,
                 " packed bytes, got ", packed.size());
  detail::unpack_nibbles<true>(packed.data(), static_cast<std::int64_t>(out.size()),
                               reinterpret_cast<std::uint8_t*>(out.data()));
}

/// Unpacks out.size() unsigned int4 values from `packed`.
inline void unpack_uint4(span<const std::uint8_t> packed, span<std::uint8_t> out) {
  if (packed.size() < (out.size() + 1) / 2)
    detail::fail("unpack_uint4: ", out.size(), " values need ", (out.size() + 1) / 2,
                 " packed bytes, got ", packed.size());
  detail::unpack_nibbles<false>(packed.data(), static_cast<std::int64_t>(out.size()), out.data());
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_PACK_HPP_
