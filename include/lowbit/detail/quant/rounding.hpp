// SPDX-License-Identifier: Apache-2.0
// detail/quant/rounding.hpp: THE place where lowbit rounds a number. Every kernel, fast
// path and layer reproduces these definitions bit for bit; reference.hpp spells
// them out over whole tensors with these helpers.
//
// 1. Quantize (float -> integer)
//      q = clamp(zero_point + round_half_even(x * inv_scale), quant_min, quant_max)
//      inv_scale = 1.0f / scale, computed once in float32.
//    Multiplying by the float32 reciprocal (not dividing) is PyTorch's and FBGEMM's
//    rule, and what makes lowbit bit-exact with torch.quantize_per_tensor/channel.
//    round_half_even is std::nearbyint under the default FP environment, and what
//    cvtps2dq does under the default MXCSR. The zero point is added AFTER rounding,
//    in float (exact: both terms are integers far below 2^24), and the clamp happens
//    in float before the conversion to int, so huge |x| never overflows an int.
//
// 2. Dequantize (integer -> float)
//      x = (float(q) - float(zero_point)) * scale        (float32, one rounding)
//
// 3. Requantize (int32 accumulator -> int8/uint8), two forms:
//    a) float multiplier (FBGEMM/XNNPACK):
//         y = clamp(zp_out + round_half_even(float(acc) * multiplier), lo, hi)
//       float(acc) rounds |acc| > 2^24 to float32 first; the product is one float32
//       rounding; then the same round-half-even as quantize.
//    b) fixed-point multiplier + shift (gemmlowp/TFLite encoding, SINGLE rounding):
//         multiplier M = m * 2^(shift - 31), m in [2^30, 2^31) (Q0.31), shift in [-31, 30]
//         y = clamp(zp_out + ((int64(acc) * m + 2^(30 - shift)) >> (31 - shift)), lo, hi)
//       i.e. one rounding, half toward +infinity (ruy, TFLITE_SINGLE_ROUNDING,
//       CMSIS-NN). lowbit does not implement TFLite's default double rounding
//       (SaturatingRoundingDoublingHighMul then RoundingDivideByPOT), which is not
//       correctly rounded; see ../shared/notes/field-anchors.md §4.4.
//       quantize_multiplier() encodes a real M exactly like TFLite's
//       QuantizeMultiplier (frexp, round half away from zero on the Q0.31 mantissa).
#ifndef LOWBIT_DETAIL_QUANT_ROUNDING_HPP_
#define LOWBIT_DETAIL_QUANT_ROUNDING_HPP_

#include <cmath>
#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// Round half to even. std::nearbyint honours the current rounding mode; lowbit
/// assumes the default (round to nearest even) and documents that assumption.
inline float round_half_even(float v) noexcept { return std::nearbyint(v); }

/// The quantize rule for one value, given the float32 reciprocal of the scale.
/// `x` must be finite (callers validate or apply the non-finite policy first).
inline std::int32_t quantize_one(float x, float inv_scale, std::int32_t zero_point,
                                 std::int32_t qmin, std::int32_t qmax) noexcept {
  float v = static_cast<float>(zero_point) + round_half_even(x * inv_scale);
  v = v < static_cast<float>(qmin) ? static_cast<float>(qmin) : v;
  v = v > static_cast<float>(qmax) ? static_cast<float>(qmax) : v;
  return static_cast<std::int32_t>(v);
}

/// The dequantize rule for one value.
inline float dequantize_one(std::int32_t q, float scale, std::int32_t zero_point) noexcept {
  return (static_cast<float>(q) - static_cast<float>(zero_point)) * scale;
}

/// Requantize, float-multiplier form (3a above).
inline std::int32_t requantize_float_one(std::int32_t acc, float multiplier, std::int32_t zp_out,
                                         std::int32_t lo, std::int32_t hi) noexcept {
  return quantize_one(static_cast<float>(acc), multiplier, zp_out, lo, hi);
}

/// A real multiplier M encoded as m * 2^(shift - 31), m in [2^30, 2^31).
struct fixed_point_multiplier {
  std::int32_t multiplier = 0;  ///< Q0.31 mantissa m (0 encodes M == 0)
  int shift = 0;                ///< power of two; > 0 means a left shift
};

/// Requantize, fixed-point form (3b above): single rounding, half toward +inf.
inline std::int32_t requantize_fixed_one(std::int32_t acc, fixed_point_multiplier fm,
                                         std::int32_t zp_out, std::int32_t lo,
                                         std::int32_t hi) noexcept {
  const int total = 31 - fm.shift;  // in [1, 62] for shift in [-31, 30]
  const std::int64_t prod = static_cast<std::int64_t>(acc) * fm.multiplier;
  const std::int64_t rounded = (prod + (std::int64_t{1} << (total - 1))) >> total;
  std::int64_t v = rounded + zp_out;
  v = v < lo ? lo : v;
  v = v > hi ? hi : v;
  return static_cast<std::int32_t>(v);
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_QUANT_ROUNDING_HPP_
