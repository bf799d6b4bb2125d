// SPDX-License-Identifier: Apache-2.0
// choose_qparams.hpp: from an observed range [min, max] to quant_params.
//
// These are PyTorch's rules (torch/ao/quantization/observer.py,
// _calculate_qparams, and ATen's ChooseQuantizationParams for dynamic
// quantization), reproduced in the same float precision so the scales and zero
// points are bit-identical with torch's. Every observer in calibrate.hpp ends here.
//
// Static (observer) rule, all arithmetic in float32:
//   min' = min(min, 0), max' = max(max, 0)            the range always contains 0
//   symmetric, convention::pytorch:
//     amax  = max(-min', max')
//     scale = max(amax / (float(qmax - qmin) / 2), eps)  int8: amax / 127.5
//     zero_point = symmetric_zero_point(dtype)           0 signed, 128 uint8
//   symmetric, convention::narrow (TFLite, ONNX Runtime, ggml Q8_0, XNNPACK):
//     range [-(2^(b-1) - 1), 2^(b-1) - 1] ([-127, 127] for int8, [-7, 7] for int4)
//     scale = max(amax / qmax, eps), zero_point = 0      signed dtypes only
//   affine:
//     scale = max((max' - min') / float(qmax - qmin), eps)
//     zero_point = clamp(qmin - round_half_even(min' / scale), qmin, qmax)
//   eps defaults to float32 epsilon 2^-23, so an all-zero tensor gets scale = eps.
//   reduce_range halves the range with floor division: int8 [-64, 63], uint8 [0, 127]
//   (PyTorch's guard against vpmaddubsw int16 saturation on old x86 kernels).
//
// Dynamic rule (torch.ao.quantization.quantize_dynamic on x86: FBGEMM's
// ChooseQuantizationParams, uint8 [0, 255], or [0, 127] with reduce_range):
//   double-precision intermediate scale = (max' - min') / (qmax - qmin), replaced by
//   0.1 when it is 0 in float or its float reciprocal is infinite; then raised to
//   6.1e-5 (SMALL_SCALE_THRESHOLD) widening the range proportionally; the zero point
//   is taken from whichever end has the smaller rounding error and nudged with
//   nearbyint into [qmin, qmax].
//
// Deviation from torch, by design: torch gives quint8 symmetric zero_point 128 even
// with reduce_range ([0, 127]), a zero point outside the range; lowbit uses the
// middle of the reduced range, 64.
#ifndef LOWBIT_CHOOSE_QPARAMS_HPP_
#define LOWBIT_CHOOSE_QPARAMS_HPP_

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/rounding.hpp"
#include "lowbit/error.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

/// The two symmetric conventions in use in the field (see the file comment).
enum class symmetric_convention : std::uint8_t { pytorch, narrow };

/// What kind of parameters to choose from a range.
struct qparams_options {
  lowbit::dtype type = lowbit::dtype::int8;
  lowbit::scheme scheme = lowbit::scheme::symmetric;
  symmetric_convention convention = symmetric_convention::pytorch;
  bool reduce_range = false;
  std::optional<std::int32_t> quant_min;  ///< custom range (both or neither)
  std::optional<std::int32_t> quant_max;
  float eps = FLT_EPSILON;  ///< smallest scale (PyTorch: torch.finfo(float32).eps)

  /// Signed int8 symmetric, PyTorch convention (amax / 127.5).
  static qparams_options symmetric(lowbit::dtype t = lowbit::dtype::int8,
                                   symmetric_convention c = symmetric_convention::pytorch) {
    qparams_options o;
    o.type = t;
    o.scheme = lowbit::scheme::symmetric;
    o.convention = c;
    return o;
  }
  static qparams_options affine(lowbit::dtype t = lowbit::dtype::uint8) {
    qparams_options o;
    o.type = t;
    o.scheme = lowbit::scheme::affine;
    return o;
  }
};

/// The [quant_min, quant_max] these options resolve to (custom range, narrow
/// convention and reduce_range applied). Throws on an impossible range.
inline std::pair<std::int32_t, std::int32_t> resolve_quant_range(const qparams_options& o) {
  if (o.quant_min.has_value() != o.quant_max.has_value())
    detail::fail("choose_qparams: give both quant_min and quant_max or neither");
  std::int32_t qmin = o.quant_min.value_or(dtype_min(o.type));
  std::int32_t qmax = o.quant_max.value_or(dtype_max(o.type));
  if (qmin >= qmax)
    detail::fail("choose_qparams: quant_min (", qmin, ") must be < quant_max (", qmax, ")");
  if (qmin < dtype_min(o.type) || qmax > dtype_max(o.type))
    detail::fail("choose_qparams: range [", qmin, ", ", qmax, "] does not fit ", to_string(o.type),
                 " [", dtype_min(o.type), ", ", dtype_max(o.type), "]");
  if (o.scheme == lowbit::scheme::symmetric && o.convention == symmetric_convention::narrow) {
    if (!is_signed(o.type))
      detail::fail("choose_qparams: the narrow symmetric convention needs a signed dtype, got ",
                   to_string(o.type));
    qmin = std::max(qmin, -qmax);  // [-127, 127] for int8
  }
  if (o.reduce_range) {
    // Python floor division, as torch: -128 // 2 = -64, 127 // 2 = 63.
    auto floor_half = [](std::int32_t v) { return v >= 0 ? v / 2 : -((-v + 1) / 2); };
    qmin = floor_half(qmin);
    qmax = floor_half(qmax);
  }
  if (!(o.eps > 0.0f) || !std::isfinite(o.eps))
    detail::fail("choose_qparams: eps must be finite and > 0, got ", o.eps);
  return {qmin, qmax};
}

namespace detail {

inline void check_range(float mn, float mx, const char* who) {
  if (!std::isfinite(mn) || !std::isfinite(mx))
    fail(who, ": min/max must be finite, got [", mn, ", ", mx, "]");
  if (mn > mx) fail(who, ": min (", mn, ") > max (", mx, ")");
}

/// One (scale, zero_point) from a range, float32 throughout (the static rule).
inline void scale_zero_point(float mn, float mx, const qparams_options& o, std::int32_t qmin,
                             std::int32_t qmax, float& scale, std::int32_t& zp) {
  const float min_neg = std::min(mn, 0.0f);
  const float max_pos = std::max(mx, 0.0f);
  if (o.scheme == lowbit::scheme::symmetric) {
    const float amax = std::max(-min_neg, max_pos);
    const float denom = o.convention == symmetric_convention::narrow
                            ? static_cast<float>(qmax)
                            : static_cast<float>(qmax - qmin) / 2.0f;
    scale = std::max(amax / denom, o.eps);
    // torch: (qmin + qmax) // 2 for a custom unsigned range, 128 for default quint8.
    const bool custom = o.quant_min.has_value();
    zp = (!is_signed(o.type) && custom) ? (qmin + qmax) / 2
                                        : symmetric_zero_point(o.type, qmin, qmax);
  } else {
    scale = std::max((max_pos - min_neg) / static_cast<float>(qmax - qmin), o.eps);
    const float r = round_half_even(min_neg / scale);
    float z = static_cast<float>(qmin) - r;
    z = std::min(std::max(z, static_cast<float>(qmin)), static_cast<float>(qmax));
    zp = static_cast<std::int32_t>(z);
  }
}

}  // namespace detail

/// Per-tensor parameters from an observed range.
inline quant_params choose_qparams(float min, float max, const qparams_options& o) {
  detail::check_range(min, max, "choose_qparams");
  const auto [qmin, qmax] = resolve_quant_range(o);
  quant_params p;
  p.type = o.type;
  p.scheme = o.scheme;
  p.granularity = per_tensor{};
  p.quant_min = qmin;
  p.quant_max = qmax;
  p.scales.resize(1);
  p.zero_points.resize(1);
  detail::scale_zero_point(min, max, o, qmin, qmax, p.scales[0], p.zero_points[0]);
  return p;
}

/// Per-channel or per-group parameters from one range per channel/group
/// (mins[i], maxs[i] pair i; the granularity is recorded in the result).
inline quant_params choose_qparams(span<const float> mins, span<const float> maxs,
                                   const qparams_options& o, granularity g) {
  if (mins.size() != maxs.size())
    detail::fail("choose_qparams: ", mins.size(), " minima but ", maxs.size(), " maxima");
  if (mins.empty()) detail::fail("choose_qparams: no ranges given");
  if (g.is_per_tensor() && mins.size() != 1)
    detail::fail("choose_qparams: per_tensor takes one range, got ", mins.size());
  for (std::size_t i = 0; i < mins.size(); ++i) {
    if (!std::isfinite(mins[i]) || !std::isfinite(maxs[i]) || mins[i] > maxs[i])
      detail::fail("choose_qparams: range ", i, " [", mins[i], ", ", maxs[i],
                   "] is not a finite interval");
  }
  const auto [qmin, qmax] = resolve_quant_range(o);
  quant_params p;
  p.type = o.type;
  p.scheme = o.scheme;
  p.granularity = g;
  p.quant_min = qmin;
  p.quant_max = qmax;
  p.scales.resize(mins.size());
  p.zero_points.resize(mins.size());
  for (std::size_t i = 0; i < mins.size(); ++i)
    detail::scale_zero_point(mins[i], maxs[i], o, qmin, qmax, p.scales[i], p.zero_points[i]);
  return p;
}

namespace detail {
/// choose_qparams_dynamic's arithmetic on a checked range, without allocating.
inline void dynamic_scale_zero_point(float min, float max, bool reduce_range, float& scale_out,
                                     std::int32_t& zp) noexcept {
  std::int32_t qmin = 0, qmax = 255;
  if (reduce_range) {
    qmin /= 2;
    qmax /= 2;
  }
  min = std::min(min, 0.0f);
  max = std::max(max, 0.0f);
  double scale = (static_cast<double>(max) - min) / (qmax - qmin);
  if (static_cast<float>(scale) == 0.0f || std::isinf(1.0f / static_cast<float>(scale)))
    scale = 0.1;
  constexpr float kSmallScale = 6.1e-5f;  // ATen's SMALL_SCALE_THRESHOLD
  if (scale < kSmallScale) {
    const float org_scale = static_cast<float>(scale);
    scale = kSmallScale;
    if (min == 0.0f) {
      max = kSmallScale * static_cast<float>(qmax - qmin);
    } else if (max == 0.0f) {
      min = -kSmallScale * static_cast<float>(qmax - qmin);
    } else {
      const float amplifier = kSmallScale / org_scale;
      min *= amplifier;
      max *= amplifier;
    }
  }
  const double zp_from_min = qmin - min / scale;
  const double zp_from_max = qmax - max / scale;
  const double zp_from_min_err = std::abs(qmin) - std::abs(min / scale);
  const double zp_from_max_err = std::abs(qmax) - std::abs(max / scale);
  const double initial = zp_from_min_err < zp_from_max_err ? zp_from_min : zp_from_max;
  if (initial < qmin) {
    zp = qmin;
  } else if (initial > qmax) {
    zp = qmax;
  } else {
    zp = static_cast<std::int32_t>(std::nearbyint(initial));
  }
  scale_out = static_cast<float>(scale);
}
}  // namespace detail

/// PyTorch's dynamic-quantization rule (see the file comment): per-tensor uint8
/// activation parameters, as torch.ao.quantization.quantize_dynamic computes them
/// for each call of a dynamically quantized Linear on x86.
inline quant_params choose_qparams_dynamic(float min, float max, bool reduce_range = false) {
  detail::check_range(min, max, "choose_qparams_dynamic");
  float scale = 0.0f;
  std::int32_t zp = 0;
  detail::dynamic_scale_zero_point(min, max, reduce_range, scale, zp);
  quant_params p = quant_params::tensor(dtype::uint8, scale, zp);
  p.quant_min = 0;  // torch quantizes with the full uint8 range even under reduce_range
  p.quant_max = 255;
  return p;
}

/// Per-row ("per-token") parameters of a 2-D [rows x cols] float matrix: one range
/// per row, then the static rule. The matrix must be finite (checked; the error
/// names the first bad element).
inline quant_params choose_qparams_per_row(tensor_view<const float> x, const qparams_options& o) {
  if (x.rank() != 2)
    detail::fail("choose_qparams_per_row: needs a 2-D tensor, got rank ", x.rank());
  const std::int64_t rows = x.shape[0], cols = x.shape[1];
  if (rows == 0 || cols == 0)
    detail::fail("choose_qparams_per_row: empty matrix [", rows, " x ", cols, "]");
  std::vector<float> mins(static_cast<std::size_t>(rows)), maxs(static_cast<std::size_t>(rows));
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* row = x.data + r * x.strides[0];
    float mn = row[0], mx = row[0];
    for (std::int64_t c = 0; c < cols; ++c) {
      const float v = row[c * x.strides[1]];
      if (!std::isfinite(v))
        detail::fail("choose_qparams_per_row: non-finite value ", v, " at [", r, ", ", c, "]");
      mn = std::min(mn, v);
      mx = std::max(mx, v);
    }
    mins[static_cast<std::size_t>(r)] = mn;
    maxs[static_cast<std::size_t>(r)] = mx;
  }
  return choose_qparams(span<const float>(mins), span<const float>(maxs), o, per_channel{0});
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_CHOOSE_QPARAMS_HPP_
