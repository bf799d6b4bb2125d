// SPDX-License-Identifier: Apache-2.0
// reference/quantize.hpp: the oracle that DEFINES quantize, dequantize and INT4 packing.
//
// Everything here is scalar, obvious and slow on purpose. Each fast path in the
// library (xsimd, AVX2, AVX-512, VNNI, AMX) is tested to produce exactly these bytes
// (integers) or these floats (dequantize), tails and strided views included. The
// per-element rules live in detail/quant/rounding.hpp; this file only walks tensors.
// Reference functions validate nothing beyond what they need to stay memory-safe:
// call them with parameters the public API would accept.
#ifndef LOWBIT_REFERENCE_QUANTIZE_HPP_
#define LOWBIT_REFERENCE_QUANTIZE_HPP_

#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/rounding.hpp"
#include "lowbit/detail/quant/storage.hpp"
#include "lowbit/detail/quant/walk.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace reference {

/// Writes integer value `v` (already in the dtype's range) as logical element `i`
/// of a storage buffer (detail/quant/storage.hpp).
inline void store(dtype t, std::uint8_t* out, std::int64_t i, std::int32_t v) noexcept {
  detail::store_stored(t, out, i, v);
}

/// Reads logical element `i` of a storage buffer as an integer.
inline std::int32_t load(dtype t, const std::uint8_t* in, std::int64_t i) noexcept {
  return detail::load_stored(t, in, i);
}

/// quantize: q = clamp(zp + round_half_even(x * (1/scale)), qmin, qmax) into
/// `out` (storage_bytes(p.type, x.numel()) bytes, logical row-major order). For
/// INT4 with an odd count, the last high nibble is written as zero.
/// `saturate_nonfinite`: NaN -> zero_point, +Inf -> quant_max, -Inf -> quant_min;
/// otherwise x must be finite.
inline void quantize(tensor_view<const float> x, const quant_params& p, std::uint8_t* out,
                     bool saturate_nonfinite = false) {
  const detail::segmentation layout = detail::segmentation_of(p, x.shape);
  std::vector<float> inv(p.scales.size());
  for (std::size_t i = 0; i < inv.size(); ++i) inv[i] = 1.0f / p.scales[i];
  const std::int64_t n = x.numel();
  if (bits(p.type) == 4 && n % 2 == 1) out[n / 2] = 0;
  detail::for_each_index(
      x.shape, x.strides, [&](std::int64_t flat, std::int64_t off, const std::int64_t* idx) {
        const auto k = static_cast<std::size_t>(layout.index(idx));
        float v = x.data[off];
        if (saturate_nonfinite && std::isnan(v)) v = 0.0f;
        store(p.type, out, flat,
              detail::quantize_one(v, inv[k], p.zero_points[k], p.quant_min, p.quant_max));
      });
}

/// dequantize: x = (q - zero_point) * scale, from storage into the view `out`
/// (whose shape gives the logical shape).
inline void dequantize(const std::uint8_t* q, const quant_params& p, tensor_view<float> out) {
  const detail::segmentation layout = detail::segmentation_of(p, out.shape);
  detail::for_each_index(
      out.shape, out.strides, [&](std::int64_t flat, std::int64_t off, const std::int64_t* idx) {
        const auto k = static_cast<std::size_t>(layout.index(idx));
        out.data[off] =
            detail::dequantize_one(load(p.type, q, flat), p.scales[k], p.zero_points[k]);
      });
}

/// INT4 packing of already-quantized values (int4: [-8, 7], uint4: [0, 15]).
inline void pack_int4(const std::int32_t* values, std::int64_t n, std::uint8_t* out) noexcept {
  for (std::int64_t i = 0; i < (n + 1) / 2; ++i) {
    const std::int32_t lo = values[2 * i];
    const std::int32_t hi = 2 * i + 1 < n ? values[2 * i + 1] : 0;
    out[i] = static_cast<std::uint8_t>((lo & 0x0F) | ((hi & 0x0F) << 4));
  }
}

}  // namespace reference
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_REFERENCE_QUANTIZE_HPP_
