// SPDX-License-Identifier: Apache-2.0
// detail/gemm/raw_tile.hpp: an int32-products kernel dressed in the kernel table's contract.
//
// Kernels that only compute raw products (AVX2, AVX-VNNI, portable: K::s8<R> and
// K::s4<R> write P[R][16] = sum over packed rows [kb, ke) of a' * w for one panel)
// become table tiles here: raw_tiles<K> calls the kernel, then finishes the tile with
// the operations of detail/gemm/tile.hpp written in plain C++ (baseline code, so the
// float steps are one multiply and one add, each rounded: what lowbit::reference
// does). The AVX-512 tiles do the same operations in registers.
//
//   s8:  v = P - za' colsum[n] [- zw[n] rowsum[m] + K za' zw[n]]        uint32 wrap
//   s4:  per group g (the kernel subtracts the stored + 8 in bytes, so no
//        group_rowsum term): v_g = P_g - za' colsum[n][g];  v = sum_g v_g,
//        f = sum_g float(v_g) * sw[n][g]
//   then the epilogue of the call (int32 / f32 / requantize), channels n < N only.
#ifndef LOWBIT_DETAIL_GEMM_RAW_TILE_HPP_
#define LOWBIT_DETAIL_GEMM_RAW_TILE_HPP_

#include <cstdint>
#include <cstring>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/gemm/tile.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/detail/quant/rounding.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// One panel's per-channel terms, padded to 16 lanes (zeros past N), so the epilogue
/// below runs fixed-length loops the compiler vectorizes at the baseline (SSE2)
/// instead of loops over a variable count.
struct raw_panel_terms {
  alignas(64) std::uint32_t zc[16] = {};  ///< za' * colsum[n] (s8)
  std::uint32_t zw[16] = {};              ///< zw[n] (s8 affine)
  std::uint32_t kzw[16] = {};             ///< K * za' * zw[n] (s8 affine)
  float sw[16] = {};                      ///< s8 weight scales
  float bias[16] = {};
};

inline void load_raw_panel_terms(const tile_epilogue& e, bool s8, std::int64_t n0, std::int64_t nc,
                                 raw_panel_terms& t) noexcept {
  const auto za = static_cast<std::uint32_t>(e.za);
  for (std::int64_t j = 0; j < nc; ++j) {
    const std::int64_t n = n0 + j;
    if (s8) {
      t.zc[j] = za * static_cast<std::uint32_t>(e.colsum[n]);
      if (e.zw) {
        t.zw[j] = static_cast<std::uint32_t>(e.zw[n]);
        t.kzw[j] = static_cast<std::uint32_t>(e.kza) * t.zw[j];
      }
      if (e.sw) t.sw[j] = e.sw[n];
    }
    if (e.bias) t.bias[j] = e.bias[n];
  }
}

/// Writes rows m0 .. m0 + rows - 1, channels n0 .. n0 + nc - 1 from the exact int32
/// sums v[r][16] (and, s4, the float sums f[r][16]; null for s8).
///
/// These finishing steps are compiled for the baseline and never inlined into a
/// kernel's target region (LOWBIT_NOINLINE): there GCC could fuse a multiply and an
/// add into an FMA, one rounding instead of the two the reference does.
LOWBIT_NOINLINE inline void store_tile(const tile_epilogue& e, const raw_panel_terms& t,
                                       const std::int32_t* v, const float* f, int rows,
                                       std::int64_t m0, std::int64_t n0, std::int64_t nc) noexcept {
  for (int r = 0; r < rows; ++r) {
    const std::int64_t m = m0 + r;
    const std::int32_t* vr = v + r * 16;
    switch (e.type) {
      case tile_epilogue::kind::int32:
        std::memcpy(static_cast<std::int32_t*>(e.y) + m * e.ldy + n0, vr,
                    static_cast<std::size_t>(nc) * 4);
        break;
      case tile_epilogue::kind::f32: {
        const float sx = e.sx_per_row ? e.sx[m] : e.sx[0];
        const bool bias = e.bias != nullptr;
        const float lo = e.lo, hi = e.hi;
        float out[16];
        for (int j = 0; j < 16; ++j) {
          float o = f ? f[r * 16 + j] * sx : static_cast<float>(vr[j]) * (sx * t.sw[j]);
          if (bias) o = o + t.bias[j];
          out[j] = o < lo ? lo : (o > hi ? hi : o);
        }
        std::memcpy(static_cast<float*>(e.y) + m * e.ldy + n0, out,
                    static_cast<std::size_t>(nc) * 4);
        break;
      }
      case tile_epilogue::kind::requantize: {
        std::uint8_t* y = static_cast<std::uint8_t*>(e.y) + m * e.ldy + n0;
        for (std::int64_t j = 0; j < nc; ++j) {
          const std::int64_t bq = e.bias_q ? e.bias_q[n0 + j] : 0;
          // acc + bias_q in int64 (it may leave the int32 range), rounded once to float
          const float a = static_cast<float>(static_cast<std::int64_t>(vr[j]) + bq);
          const std::int32_t q = quantize_one(a, e.mult[n0 + j], e.zy, e.lo_q, e.hi_q);
          y[j] = static_cast<std::uint8_t>(q & 0xFF);
        }
        break;
      }
    }
  }
}

/// Finishes an s8 tile from its raw products p[R][16] = sum over K of (a' - shift) * w
/// (shift 0 for kernels that multiply the u8 a' itself, 128 for kernels that multiply
/// the signed a' - 128): v = p - (za' - shift) colsum [- zw rowsum + K za' zw], then
/// the call's epilogue. Overwrites p.
template <int R>
LOWBIT_NOINLINE void finish_s8_tile(const tile_epilogue& e, std::int32_t* p, std::uint32_t shift,
                                    std::int64_t m0, std::int64_t n0) noexcept {
  const std::int64_t nc = e.n - n0 < 16 ? e.n - n0 : 16;
  raw_panel_terms t;
  tile_epilogue e2 = e;
  e2.za = wrap(static_cast<std::uint32_t>(e.za) - shift);
  load_raw_panel_terms(e2, true, n0, nc, t);
  for (int r = 0; r < R; ++r) {
    // v = P - za' colsum [- zw rowsum + K za' zw], wrapping uint32 (exact)
    const auto rs = e.zw ? static_cast<std::uint32_t>(e.rowsum[m0 + r]) : 0u;
    for (int j = 0; j < 16; ++j)
      p[r * 16 + j] =
          wrap(static_cast<std::uint32_t>(p[r * 16 + j]) - t.zc[j] - t.zw[j] * rs + t.kzw[j]);
  }
  store_tile(e, t, p, nullptr, R, m0, n0, nc);
}

/// An s4 tile from a kernel that returns one group's raw products at a time:
/// group(g, p) writes p[R][16] = sum over group g of a' * w' where w' = w (stored
/// nibble - 8) or, when PlusEight, the stored nibble w + 8 itself (then the group's
/// activation sums remove the 8: tile_epilogue::group_rowsum must be set).
template <int R, bool IntOut, bool PlusEight, class Group>
LOWBIT_NOINLINE void s4_tile_from_groups(const tile_epilogue& e, std::int64_t groups,
                                         const panel_group* pg, std::int64_t m0, std::int64_t n0,
                                         Group&& group) noexcept {
  std::int32_t p[R * 16];
  std::int32_t v[R * 16] = {};
  float f[R * 16] = {};
  const auto za = static_cast<std::uint32_t>(e.za);
  for (std::int64_t g = 0; g < groups; ++g) {
    group(g, p);
    for (int r = 0; r < R; ++r) {
      // - 8 * rowsum[m][g], wrapping (exact mod 2^32 like every correction)
      const std::uint32_t eight =
          PlusEight ? 8u * static_cast<std::uint32_t>(e.group_rowsum[(m0 + r) * e.groups + g]) : 0u;
      for (int j = 0; j < 16; ++j) {
        const std::int32_t vg = wrap(static_cast<std::uint32_t>(p[r * 16 + j]) - eight -
                                     za * static_cast<std::uint32_t>(pg[g].column_sums[j]));
        v[r * 16 + j] =
            wrap(static_cast<std::uint32_t>(v[r * 16 + j]) + static_cast<std::uint32_t>(vg));
        if (!IntOut) f[r * 16 + j] = f[r * 16 + j] + static_cast<float>(vg) * pg[g].scales[j];
      }
    }
  }
  const std::int64_t nc = e.n - n0 < 16 ? e.n - n0 : 16;
  raw_panel_terms t;
  load_raw_panel_terms(e, false, n0, nc, t);
  store_tile(e, t, v, IntOut ? nullptr : f, R, m0, n0, nc);
}

/// K::s8<R> / K::s4<R> as table tiles; K::mr rows, one panel.
template <class K>
struct raw_tiles {
  static constexpr int s8_mr = K::mr;
  static constexpr int s8_panels = 1;
  static constexpr int s4_mr = K::mr;
  static constexpr bool s4_group_sums = false;  // the kernels subtract 8 in bytes
  /// The whole L2 of Haswell..Comet Lake client cores, half of Zen 2/3's.
  static constexpr std::int64_t row_block_bytes = 256 * 1024;

  template <int R, int NP>
  static void s8_tile(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                      std::int64_t /*panel_bytes*/, std::int64_t k4n, const tile_epilogue& e,
                      std::int64_t m0, std::int64_t n0) noexcept {
    static_assert(NP == 1, "raw kernels are one panel wide");
    std::int32_t p[R * 16];
    K::template s8<R>(a, lda, b, 0, k4n, p);
    finish_s8_tile<R>(e, p, 0, m0, n0);
  }

  template <int R, bool IntOut>
  static void s4_tile(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                      std::int64_t groups, std::int64_t g8, const panel_group* pg,
                      const tile_epilogue& e, std::int64_t m0, std::int64_t n0) noexcept {
    s4_tile_from_groups<R, IntOut, false>(e, groups, pg, m0, n0,
                                          [&](std::int64_t g, std::int32_t* p) {
                                            K::template s4<R>(a, lda, b, g * g8, (g + 1) * g8, p);
                                          });
  }
};

/// The table entry of an int32-products kernel struct K (K::mr, K::s8<R>, K::s4<R>).
template <class K>
constexpr gemm_ukernels raw_gemm_ukernels(const char* s8_name, const char* s4_name) noexcept {
  return gemm_ukernels_of<raw_tiles<K>>(s8_name, s4_name);
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_GEMM_RAW_TILE_HPP_
