// SPDX-License-Identifier: Apache-2.0
// detail/gemm/tile.hpp: what a fused microkernel needs to finish its tile in registers.
//
// A fused kernel (arch/avx512_vnni/gemm_kernel.hpp) computes an MR x 16 NP block of raw
// products P[m][n] = sum_k a'[m][k] * W[n][k] and turns it into output values before
// it leaves the registers (gemmlowp's "output pipeline", ruy's MulParams applied in
// the kernel). Everything that depends only on the call is resolved once, by the
// driver, into a tile_epilogue; everything that depends on the tile (rows m, the 16
// channels of panel p) is an index into it. The math, per output element (the same
// operations, in the same order, as detail/gemm/raw_tile.hpp and lowbit::reference::gemm):
//
//   s8:  v = P - za' * colsum[n]                                   (uint32 wrap, exact)
//            [- zw[n] * rowsum[m] + K * za' * zw[n]]               (affine weights)
//   s4:  per group g: v_g = P'_g - 8 * group_rowsum[m][g] - za' * colsum[n][g]
//                     (P'_g = sum a' * (w + 8): the kernel uses the stored nibbles as
//                     they are; group_rowsum[m][g] = sum_{k in g} a'[m][k]. P'_g may
//                     pass 2^31 for groups above ~561k values: vpdpbusd wraps, and the
//                     wrapped difference is exact, like every correction here)
//                     int32 output: v = sum_g v_g
//                     otherwise:    f = sum_g float(v_g) * sw[n][g]   (mul, then add)
//   int32       y = v
//   f32         y = clamp(float(v) * (sx[m] * sw[n]) [+ bias[n]], lo, hi)    s8
//               y = clamp(f * sx[m] [+ bias[n]], lo, hi)                      s4
//   requantize  y = clamp(zy + round_half_even(float(int64(v) + bias_q[n]) * mult[n]),
//                         lo_q, hi_q)                                          s8
//
// "clamp(v, lo, hi)" is `v < lo ? lo : (v > hi ? hi : v)`, which keeps -0.0 and is what
// vmaxps(lo, v) / vminps(hi, v) compute with the operands in that order.
#ifndef LOWBIT_DETAIL_GEMM_TILE_HPP_
#define LOWBIT_DETAIL_GEMM_TILE_HPP_

#include <cstdint>
#include <cstring>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// The int32 with the bits of v: the wrapping (mod 2^32) arithmetic of the corrections.
inline std::int32_t wrap(std::uint32_t v) noexcept {
  std::int32_t r;
  std::memcpy(&r, &v, 4);
  return r;
}

/// s4: one group's epilogue terms for the 16 channels of a panel (zero past N): the
/// column sums then the scales, 128 bytes, so a kernel folds a group with two aligned
/// loads (packed_weights::panel_groups()).
struct alignas(64) panel_group {
  std::int32_t column_sums[16];
  float scales[16];
};

/// Per-call epilogue terms, resolved once by the driver (pointers into the call's
/// packed_weights, activations, epilogue and output; per channel arrays indexed by n).
struct tile_epilogue {
  enum class kind : std::uint8_t { int32, f32, requantize };
  kind type = kind::int32;
  std::int64_t n = 0;                    ///< output channels (loads past n are masked)
  std::int32_t za = 0;                   ///< activation zero point in the kernels' u8 domain
  std::int32_t kza = 0;                  ///< K * za (wrapping), affine weights only
  const std::int32_t* colsum = nullptr;  ///< s8: per channel
  /// s8: where the weight -128 is, panel p's entries (k * 16 + lane) being
  /// min_entries[min_offsets[p] .. min_offsets[p + 1]) (packed_weights::min_offsets()).
  /// AVX2's sign trick corrects them (arch/avx2/gemm_tiles.hpp). Null: unknown.
  const std::uint32_t* min_offsets = nullptr;
  const std::uint32_t* min_entries = nullptr;
  /// s8: every prepared a' of the call is below 128 (7-bit activations: PyTorch's
  /// reduce_range, oneDNN's u7). Set only for tables with gemm_ukernels::s8_u7_name,
  /// whose tiles then multiply a' directly (vpmaddubsw cannot saturate).
  bool a_u7 = false;
  const std::int32_t* zw = nullptr;            ///< s8 affine: per channel, else null
  const std::int32_t* rowsum = nullptr;        ///< s8 affine: per row, else null
  const std::int32_t* group_rowsum = nullptr;  ///< s4: [M x groups]
  std::int64_t groups = 0;                     ///< s4: groups per row of group_rowsum
  const float* sw = nullptr;                   ///< s8 f32: per channel weight scales
  const float* sx = nullptr;                   ///< f32: activation scale(s)
  bool sx_per_row = false;
  const float* bias = nullptr;           ///< f32: per channel or null
  float lo = 0, hi = 0;                  ///< f32 clamp
  const float* mult = nullptr;           ///< requantize: per channel
  const std::int32_t* bias_q = nullptr;  ///< requantize: per channel or null
  std::int32_t zy = 0, lo_q = 0, hi_q = 0;
  void* y = nullptr;  ///< output base: int32_t, float or 8-bit
  std::int64_t ldy = 0;
};

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_GEMM_TILE_HPP_
