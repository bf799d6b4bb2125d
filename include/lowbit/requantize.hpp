// SPDX-License-Identifier: Apache-2.0
// requantize.hpp: int32 accumulators -> int8 / uint8, the output stage of an integer GEMM
// done on its own (gemm.hpp fuses the same rule into the kernels).
//
//   float form        q = clamp(zp + round_half_even(acc * M), lo, hi)
//   fixed-point form  q = clamp(zp + ((int64(acc) * m + 2^(30 - shift)) >> (31 - shift)),
//                     lo, hi) with M = m * 2^(shift - 31) (TFLite's QuantizeMultiplier
//                     encoding, one rounding)
// Per tensor or per channel (the LAST axis). The per-element rules are in
// detail/quant/rounding.hpp. Errors: lowbit::error for invalid parameters, an output too
// small or of the wrong element type; nothing is written on error.
#ifndef LOWBIT_REQUANTIZE_HPP_
#define LOWBIT_REQUANTIZE_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/rounding.hpp"
#include "lowbit/detail/quant/storage.hpp"
#include "lowbit/detail/quant/walk.hpp"
#include "lowbit/error.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

using detail::fixed_point_multiplier;

/// Encodes a real multiplier M > 0 as m * 2^(shift - 31) with m in [2^30, 2^31),
/// exactly like TFLite's QuantizeMultiplier: frexp, then round half away from zero
/// of the mantissa times 2^31. M below 2^-32 encodes as 0 (everything rounds to 0).
/// Throws for M <= 0, non-finite M, or M >= 2^30 (shift would exceed 30).
inline fixed_point_multiplier quantize_multiplier(double M) {
  if (!(M > 0.0) || !std::isfinite(M))
    detail::fail("quantize_multiplier: multiplier must be finite and > 0, got ", M);
  int shift = 0;
  const double q = std::frexp(M, &shift);
  auto m64 = static_cast<std::int64_t>(std::round(q * static_cast<double>(1ll << 31)));
  if (m64 == (1ll << 31)) {
    m64 /= 2;
    ++shift;
  }
  if (shift < -31) return {0, 0};
  if (shift > 30) detail::fail("quantize_multiplier: multiplier ", M, " is too large (>= 2^30)");
  return {static_cast<std::int32_t>(m64), shift};
}

/// How int32 accumulators [rows x channels] become int8/uint8. Per-channel is along
/// the LAST axis (output features N of a GEMM result [M x N]).
struct requantize_params {
  lowbit::dtype out_type = lowbit::dtype::int8;  ///< int8 or uint8
  std::vector<float> multipliers;                ///< float form: 1 or N entries
  std::vector<fixed_point_multiplier> fixed;     ///< fixed-point form: 1 or N entries
  std::int32_t zero_point = 0;                   ///< output zero point
  std::int32_t clamp_min = -128;                 ///< in output units; ReLU = zero_point
  std::int32_t clamp_max = 127;

  /// Float-multiplier form, full range of `t`.
  static requantize_params with_float(lowbit::dtype t, std::vector<float> m, std::int32_t zp) {
    requantize_params r;
    r.out_type = t;
    r.multipliers = std::move(m);
    r.zero_point = zp;
    r.clamp_min = dtype_min(t);
    r.clamp_max = dtype_max(t);
    return r;
  }
  /// Fixed-point form from real multipliers (encoded with quantize_multiplier).
  static requantize_params with_fixed_point(lowbit::dtype t, const std::vector<double>& m,
                                            std::int32_t zp) {
    requantize_params r = with_float(t, {}, zp);
    for (double v : m) r.fixed.push_back(quantize_multiplier(v));
    return r;
  }
  /// Fused ReLU: outputs below real 0 clamp to the zero point.
  requantize_params& relu() {
    clamp_min = std::max(clamp_min, zero_point);
    return *this;
  }

  std::size_t count() const noexcept { return fixed.empty() ? multipliers.size() : fixed.size(); }

  void validate(std::int64_t channels) const {
    if (out_type != dtype::int8 && out_type != dtype::uint8)
      detail::fail("requantize: output type must be int8 or uint8, got ", to_string(out_type));
    if (multipliers.empty() == fixed.empty())
      detail::fail("requantize: give either float multipliers or fixed-point ones (exactly one)");
    const std::size_t n = count();
    if (n != 1 && static_cast<std::int64_t>(n) != channels)
      detail::fail("requantize: ", n, " multipliers for ", channels,
                   " channels (need 1 or one per channel)");
    for (std::size_t i = 0; i < multipliers.size(); ++i)
      if (!(multipliers[i] > 0.0f) || !std::isfinite(multipliers[i]))
        detail::fail("requantize: multiplier[", i, "] = ", multipliers[i],
                     " must be finite and > 0");
    for (std::size_t i = 0; i < fixed.size(); ++i) {
      const auto& f = fixed[i];
      const bool zero = f.multiplier == 0;
      if (!zero && (f.multiplier < (1 << 30) || f.shift < -31 || f.shift > 30))
        detail::fail("requantize: fixed multiplier[", i, "] = {", f.multiplier, ", shift ", f.shift,
                     "} is not normalized (m in [2^30, 2^31), shift in [-31, 30])");
    }
    if (clamp_min > clamp_max || clamp_min < dtype_min(out_type) || clamp_max > dtype_max(out_type))
      detail::fail("requantize: clamp [", clamp_min, ", ", clamp_max, "] invalid for ",
                   to_string(out_type));
    if (zero_point < dtype_min(out_type) || zero_point > dtype_max(out_type))
      detail::fail("requantize: zero_point ", zero_point, " outside ", to_string(out_type),
                   " range");
  }
};

namespace detail {
inline void requantize_checked(const tensor_view<const std::int32_t>& acc,
                               const requantize_params& rp, std::uint8_t* out,
                               std::size_t out_size) {
  const std::int64_t channels = acc.rank() == 0 ? 1 : acc.shape.back();
  rp.validate(channels);
  const std::int64_t n = acc.numel();
  if (out_size < static_cast<std::size_t>(n))
    fail("requantize: output buffer too small: need ", n, " bytes, got ", out_size);
  const bool per_channel = rp.count() > 1;
  const int last = acc.rank() - 1;
  for_each_index(
      acc.shape, acc.strides, [&](std::int64_t flat, std::int64_t off, const std::int64_t* idx) {
        const std::size_t k = per_channel ? static_cast<std::size_t>(idx[last]) : 0;
        const std::int32_t a = acc.data[off];
        const std::int32_t v =
            rp.fixed.empty()
                ? requantize_float_one(a, rp.multipliers[k], rp.zero_point, rp.clamp_min,
                                       rp.clamp_max)
                : requantize_fixed_one(a, rp.fixed[k], rp.zero_point, rp.clamp_min, rp.clamp_max);
        out[flat] = static_cast<std::uint8_t>(v & 0xFF);
      });
}
}  // namespace detail

/// Requantizes int32 accumulators to int8 (out_type must be int8).
inline void requantize(tensor_view<const std::int32_t> acc, const requantize_params& rp,
                       span<std::int8_t> out) {
  detail::check_storage_type(rp.out_type, true, "requantize");
  detail::requantize_checked(acc, rp, reinterpret_cast<std::uint8_t*>(out.data()), out.size());
}
/// Requantizes int32 accumulators to uint8 (out_type must be uint8).
inline void requantize(tensor_view<const std::int32_t> acc, const requantize_params& rp,
                       span<std::uint8_t> out) {
  detail::check_storage_type(rp.out_type, false, "requantize");
  detail::requantize_checked(acc, rp, out.data(), out.size());
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_REQUANTIZE_HPP_
