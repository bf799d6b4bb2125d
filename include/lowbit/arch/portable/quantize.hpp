// SPDX-License-Identifier: Apache-2.0
// arch/portable/quantize.hpp: quantize / dequantize runs with xsimd's default arch.
//
// This path runs wherever the dispatched kernels do not: non-x86 CPUs (NEON through
// xsimd), x86 without AVX2, and builds with LOWBIT_DISABLE_DISPATCH. It vectorizes
// for whatever the compiler baseline is (SSE2 by default, more under -march) and is
// bit-identical with detail::quantize_one: the same float multiply, nearbyint,
// zero-point add and clamp, then an exact float->int conversion. Narrowing to bytes
// is scalar (xsimd 8.1 has no narrowing conversions).
#ifndef LOWBIT_ARCH_PORTABLE_QUANTIZE_HPP_
#define LOWBIT_ARCH_PORTABLE_QUANTIZE_HPP_

#include <xsimd/xsimd.hpp>

#include <cmath>
#include <cstdint>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/rounding.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace portable {

struct qconst {
  float inv, zp, lo, hi;
};

/// One element (also the vector tail).
template <bool Vec, bool Nan>
inline std::int32_t quantize_scalar(float v, const float* inv, const float* zp, std::int64_t i,
                                    const qconst& c) noexcept {
  if (Nan && std::isnan(v)) v = 0.0f;
  float r = (Vec ? zp[i] : c.zp) + detail::round_half_even(v * (Vec ? inv[i] : c.inv));
  r = r < c.lo ? c.lo : r;
  r = r > c.hi ? c.hi : r;
  return static_cast<std::int32_t>(r);
}

/// n values -> storage. Nibble = true: INT4, must start at an even element, last
/// high nibble zero when n is odd.
template <bool Nibble, bool Vec, bool Nan>
inline void quantize_run(const float* x, std::int64_t n, const float* inv, const float* zp,
                         qconst c, std::uint8_t* out) noexcept {
  using fb = xsimd::batch<float>;
  constexpr std::int64_t W = static_cast<std::int64_t>(fb::size);
  std::int64_t i = 0;
  if constexpr (W > 1) {
    alignas(64) std::int32_t tmp[W];
    const fb lo(c.lo), hi(c.hi);
    for (; i + W <= n; i += W) {
      fb v = fb::load_unaligned(x + i);
      if (Nan) v = xsimd::select(xsimd::isnan(v), fb(0.0f), v);
      const fb vinv = Vec ? fb::load_unaligned(inv + i) : fb(c.inv);
      const fb vzp = Vec ? fb::load_unaligned(zp + i) : fb(c.zp);
      v = xsimd::min(xsimd::max(vzp + xsimd::nearbyint(v * vinv), lo), hi);
      xsimd::batch_cast<std::int32_t>(v).store_aligned(tmp);
      for (std::int64_t j = 0; j < W; ++j) {
        const std::int64_t e = i + j;
        if (!Nibble) {
          out[e] = static_cast<std::uint8_t>(tmp[j] & 0xFF);
        } else if (e % 2 == 0) {
          out[e / 2] = static_cast<std::uint8_t>(tmp[j] & 0x0F);
        } else {
          out[e / 2] = static_cast<std::uint8_t>(out[e / 2] | ((tmp[j] & 0x0F) << 4));
        }
      }
    }
  }
  for (; i < n; ++i) {
    const std::int32_t q = quantize_scalar<Vec, Nan>(x[i], inv, zp, i, c);
    if (!Nibble) {
      out[i] = static_cast<std::uint8_t>(q & 0xFF);
    } else if (i % 2 == 0) {
      out[i / 2] = static_cast<std::uint8_t>(q & 0x0F);
    } else {
      out[i / 2] = static_cast<std::uint8_t>(out[i / 2] | ((q & 0x0F) << 4));
    }
  }
}

/// Storage -> n floats (Bits 8 or 4; INT4 must start at an even element).
template <int Bits, bool Signed, bool Vec>
inline void dequantize_run(const std::uint8_t* q, std::int64_t n, const float* scale,
                           const float* zp, float s, float z, float* out) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    std::int32_t v;
    if (Bits == 8) {
      v = Signed ? static_cast<std::int8_t>(q[i]) : q[i];
    } else {
      v = (q[i / 2] >> ((i % 2) * 4)) & 0x0F;
      if (Signed && v >= 8) v -= 16;
    }
    out[i] = (static_cast<float>(v) - (Vec ? zp[i] : z)) * (Vec ? scale[i] : s);
  }
}

/// Index of the first NaN/Inf in x[0, n), or -1.
inline std::int64_t find_nonfinite(const float* x, std::int64_t n) noexcept {
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

}  // namespace portable
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ARCH_PORTABLE_QUANTIZE_HPP_
