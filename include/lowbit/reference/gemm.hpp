// SPDX-License-Identifier: Apache-2.0
// reference/gemm.hpp: the oracle that DEFINES lowbit::gemm's results.
//
// Works on UNPACKED weights, one value per byte, with plain loops: no panels, no u8
// shift, no column sums, no wrap-around. Every ISA's packed kernels must produce the
// same int32 accumulators and the same requantized bytes; f32 outputs must match
// within the tolerance each test states (they are computed with the same float
// operations in the same order, so in practice they are identical too).
#ifndef LOWBIT_REFERENCE_GEMM_HPP_
#define LOWBIT_REFERENCE_GEMM_HPP_

#include <cstdint>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/rounding.hpp"
#include "lowbit/gemm.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace reference {

/// Unpacked weights W [n x k], one int8 value per element (int4 values in [-8, 7]).
struct weights {
  weight_format format = weight_format::s8;
  const std::int8_t* values = nullptr;
  std::int64_t n = 0, k = 0, ld = 0;
  std::int64_t group_size = 0;            ///< s4 only
  std::vector<float> scales;              ///< s8: n; s4: n x (k / group_size)
  std::vector<std::int32_t> zero_points;  ///< s8: empty or n
};

/// y = epilogue(x * W^T), definitions as in gemm.hpp. Inputs are assumed valid.
inline void gemm(const activations& x, const weights& w, const epilogue& e, output y) {
  const auto* xb = static_cast<const std::uint8_t*>(x.data);
  auto xval = [&](std::int64_t m, std::int64_t k) -> std::int32_t {
    const std::uint8_t b = xb[m * x.ld + k];
    return x.type == dtype::int8 ? static_cast<std::int8_t>(b) : b;
  };
  const std::int64_t G = w.format == weight_format::s4 ? w.k / w.group_size : 1;
  const std::int64_t gs = w.format == weight_format::s4 ? w.group_size : w.k;
  for (std::int64_t m = 0; m < x.m; ++m) {
    for (std::int64_t n = 0; n < w.n; ++n) {
      const std::int32_t zw =
          w.zero_points.empty() ? 0 : w.zero_points[static_cast<std::size_t>(n)];
      std::int64_t acc = 0;
      float facc = 0.0f;
      for (std::int64_t g = 0; g < G; ++g) {
        std::int64_t acc_g = 0;
        for (std::int64_t k = g * gs; k < (g + 1) * gs; ++k)
          acc_g +=
              static_cast<std::int64_t>(xval(m, k) - x.zero_point) * (w.values[n * w.ld + k] - zw);
        acc += acc_g;
        if (w.format == weight_format::s4)
          facc = facc + static_cast<float>(acc_g) * w.scales[static_cast<std::size_t>(n * G + g)];
      }
      const auto acc32 = static_cast<std::int32_t>(acc);  // exact for K <= max_k
      const std::int64_t at = m * y.ld + n;
      const auto j = static_cast<std::size_t>(n);
      const float sx = x.scales.empty()       ? 1.0f
                       : x.scales.size() == 1 ? x.scales[0]
                                              : x.scales[static_cast<std::size_t>(m)];
      switch (e.type) {
        case epilogue::kind::int32:
          static_cast<std::int32_t*>(y.data)[at] = acc32;
          break;
        case epilogue::kind::f32: {
          float v = w.format == weight_format::s8 ? static_cast<float>(acc32) * (sx * w.scales[j])
                                                  : facc * sx;
          if (!e.bias.empty()) v = v + e.bias[j];
          v = v < e.lo ? e.lo : (v > e.hi ? e.hi : v);
          static_cast<float*>(y.data)[at] = v;
          break;
        }
        case epilogue::kind::requantize: {
          const float sxw = sx * w.scales[j];
          const std::int32_t bq =
              e.bias.empty() ? 0
                             : static_cast<std::int32_t>(detail::round_half_even(e.bias[j] / sxw));
          const std::int32_t lo = e.fuse_relu ? e.out_zero_point : dtype_min(e.out_type);
          const float a = static_cast<float>(static_cast<std::int64_t>(acc32) + bq);
          const std::int32_t q = detail::quantize_one(a, sxw / e.out_scale, e.out_zero_point, lo,
                                                      dtype_max(e.out_type));
          static_cast<std::uint8_t*>(y.data)[at] = static_cast<std::uint8_t>(q & 0xFF);
          break;
        }
      }
    }
  }
}

}  // namespace reference
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_REFERENCE_GEMM_HPP_
