// SPDX-License-Identifier: Apache-2.0
// detail/gemm/weight_only.hpp: y = x * dequant(W)^T + bias with f32 activations and packed
// int8 / int4 weights widened in registers (bitsandbytes / llama.cpp weight-only).
//
//   s8: y[m][n] = sw[n] * (sum_k x[m][k] * W[n][k]) + bias[n]
//   s4: y[m][n] = (sum_g sw[n][g] * (sum_{k in g} x[m][k] * W[n][k])) + bias[n]
// The inner sums are the weights' kernel table's (kernel_table::weight_only, e.g.
// arch/avx2/gemm_f32_kernel.hpp); the scale is
// applied once per channel (per group for s4), the bias last. At M = 1 (decode) this
// streams the packed weights once: 1 byte (s8) or half a byte (s4) per weight
// instead of 4 for f32, which is where weight-only quantization gets its speed.
#ifndef LOWBIT_DETAIL_GEMM_WEIGHT_ONLY_HPP_
#define LOWBIT_DETAIL_GEMM_WEIGHT_ONLY_HPP_

#include <algorithm>
#include <cstdint>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/core/threading.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/packed_weights.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// Panels [pb, pe) of one thread, with the weight-only tiles of the weights' table.
inline void weight_only_panels(const float* x, std::int64_t m, std::int64_t ldx,
                               const packed_weights& w, span<const float> bias, float* y,
                               std::int64_t ldy, std::int64_t pb, std::int64_t pe) {
  const f32_ukernels& uk = w.table().weight_only;
  const int MR = uk.mr;
  const std::int64_t N = w.n(), K = w.k(), G = w.groups();
  float tile[kMaxTileRows * 16];
  float acc[kMaxTileRows * 16];
  for (std::int64_t p = pb; p < pe; ++p) {
    const std::uint8_t* panel = w.data() + p * w.panel_bytes();
    const std::int64_t n0 = p * 16, nc = std::min<std::int64_t>(16, N - n0);
    for (std::int64_t m0 = 0; m0 < m; m0 += MR) {
      const int rows = static_cast<int>(std::min<std::int64_t>(MR, m - m0));
      const float* xr = x + m0 * ldx;
      if (w.format() == weight_format::s8) {
        uk.s8[rows - 1](xr, ldx, panel, K, tile);
        for (int r = 0; r < rows; ++r)
          for (std::int64_t j = 0; j < nc; ++j)
            acc[r * 16 + j] = tile[r * 16 + j] * w.scales()[static_cast<std::size_t>(n0 + j)];
      } else {
        std::fill(acc, acc + rows * 16, 0.0f);
        const std::int64_t g8 = w.group_size() / 8;
        for (std::int64_t g = 0; g < G; ++g) {
          uk.s4[rows - 1](xr, ldx, panel, g * g8, (g + 1) * g8, tile);
          for (int r = 0; r < rows; ++r)
            for (std::int64_t j = 0; j < nc; ++j)
              acc[r * 16 + j] +=
                  tile[r * 16 + j] * w.scales()[static_cast<std::size_t>((n0 + j) * G + g)];
        }
      }
      for (int r = 0; r < rows; ++r)
        for (std::int64_t j = 0; j < nc; ++j)
          y[(m0 + r) * ldy + n0 + j] =
              acc[r * 16 + j] + (bias.empty() ? 0.0f : bias[static_cast<std::size_t>(n0 + j)]);
    }
  }
}

/// Unvalidated: x [m x K] (row stride ldx), y [m x N] (row stride ldy), symmetric
/// weights packed for an available isa.
inline void weight_only_gemm(const float* x, std::int64_t m, std::int64_t ldx,
                             const packed_weights& w, span<const float> bias, float* y,
                             std::int64_t ldy, int threads) {
  if (m == 0) return;
  parallel_for(w.panels(), threads, [&](std::int64_t b, std::int64_t e) {
    weight_only_panels(x, m, ldx, w, bias, y, ldy, b, e);
  });
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_GEMM_WEIGHT_ONLY_HPP_
