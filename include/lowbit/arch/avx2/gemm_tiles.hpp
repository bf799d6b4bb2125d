// SPDX-License-Identifier: Apache-2.0
// arch/avx2/gemm_tiles.hpp: the AVX2 GEMM tiles: vpmaddubsw and vpmaddwd, exact on
// full-range data.
//
// vpmaddubsw multiplies u8 by s8 and adds each pair of products into a SATURATING int16:
// with full-range data (a' in [0, 255], w in [-128, 127]) a pair reaches 2 * 255 * 128 =
// 65280 and the sum is wrong (oneDNN's "u7" rule, PyTorch's reduce_range). Each route
// below keeps every pair inside int16, so every result is exact; the tile picks one per
// call (7-bit activations, M) and per panel (how many -128 weights):
//
// s8, the sign trick (ggml's mul_sum_i8_pairs). The kernels' u8 activations a' are the
//   signed x = a' - 128 (a' xor 0x80). vpmaddubsw(|x|, sign(w, x)) multiplies the same
//   magnitudes with the same signs, x * w = |x| * (sign(x) w), with |x| <= 128 as u8 and
//   sign(x) w in [-127, 127] as long as w != -128 (vpsignb cannot negate -128): a pair
//   is at most 2 * 128 * 127 = 32512 < 32767. vpmaddwd by ones widens the pairs to int32.
//   The tile sums (a' - 128) * w, so its epilogue uses the zero point za' - 128.
//
//   w = -128 (PyTorch's symmetric convention, amax / 127.5, gives about one per channel
//   whose extreme is negative): vpsignb(-128, x < 0) is -128, not 128, so that product
//   comes out as -128 |x| instead of 128 |x| (the pair still fits: >= -2 * 128 * 128 =
//   -32768). Packing lists where -128 is (packed_weights::min_entries()); the tile adds
//   the missing 256 |x| = 256 (128 - a') for each listed K with a' < 128, per row. A
//   panel with more than K / 4 of them (where the fix-up would cost more than the trick
//   saves) runs the int16-widened kernel of arch/avx2/gemm_kernel.hpp instead: exact
//   for any data, about half the speed.
//
// s4, no trick needed. The packed nibbles are w + 8 in [0, 15], so a pair is at most
//   2 * 255 * 15 = 7650 and four vpmaddubsw results (two K8 rows, both nibbles) add in
//   int16 to at most 30600 < 32767 before one vpmaddwd widens them. The + 8 is removed
//   per group with the group's activation sums (gemm.s4_group_sums), as on AVX-512.
//
// s8, 7-bit activations (the driver found every a' of the call below 128: PyTorch's
//   reduce_range, oneDNN's u7): vpmaddubsw(a', w) directly, |pair| <= 2 * 127 * 128 =
//   32512; 3 uops per 32 products, oneDNN's own AVX2 loop, for any M.
//
// s8, wide route (M >= 8, compute-bound): int16 operands converted once. The driver
//   widens each row block of a' to int16 (widen_rows) and each panel, once per row
//   block, to int16 K pairs (widen_panel); the 6 x 16 tile then needs only vpmaddwd
//   (exact: |pair| <= 2 * 255 * 128) and vpaddd, with no per-row work: 2 + 2 uops per
//   32 products, two of them on the multiply ports, the bound vpmaddubsw routes share.
//
// Per 32 products the sign trick costs vpsignb, vpmaddubsw, vpmaddwd, vpaddd plus its
// per-row vpxor/vpabsb, the wide route 4 uops, the s4 route about 2.5, the int16
// fallback kernel 5.5 (vpmovsx/zx on every use). oneDNN's AVX2 loop costs 3 and is
// exact only on 7-bit data; no exact full-range route with fewer than 4 is known to us,
// so on full-range data this table runs at about 0.75x oneDNN's 7-bit speed
// (docs/BENCHMARKS.md).
#ifndef LOWBIT_ARCH_AVX2_GEMM_TILES_HPP_
#define LOWBIT_ARCH_AVX2_GEMM_TILES_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>

#include "lowbit/arch/avx2/gemm_kernel.hpp"
#include "lowbit/detail/gemm/raw_tile.hpp"
#include "lowbit/detail/gemm/tile.hpp"

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX2)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx2 {

/// a[0..3] (4 bytes) in every 32-bit lane.
inline __m256i broadcast4(const std::uint8_t* p) noexcept { return _mm256_set1_epi32(load4(p)); }

/// v as computed: an empty asm the compiler cannot see through, so a product is never
/// fused with the add that follows into an FMA (one rounding where the reference has
/// two), whatever -ffp-contract says.
inline __m256 unfused(__m256 v) noexcept {
  __asm__("" : "+x"(v));
  return v;
}

struct gemm_tiles {
  // The wide route (kernel_table.hpp, gemm_ukernels::s8_wide_tile): from 8 rows on,
  // where converting a panel once serves enough rows to pay for itself.
  static constexpr int wide_mr = 6;
  static constexpr std::int64_t wide_min_rows = 8;
  static constexpr int wide_bytes = 2;

  /// a'[rows x 4 k4n] u8 -> int16, row stride 8 k4n bytes.
  static void widen_rows(const std::uint8_t* a, std::int64_t lda, std::int64_t rows,
                         std::int64_t k4n, std::uint8_t* out) noexcept {
    const std::int64_t k = 4 * k4n;
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::uint8_t* src = a + r * lda;
      auto* dst = reinterpret_cast<std::int16_t*>(out + r * 2 * k);
      std::int64_t i = 0;
      for (; i + 16 <= k; i += 16)
        _mm256_storeu_si256(
            reinterpret_cast<__m256i*>(dst + i),
            _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
      for (; i < k; ++i) dst[i] = src[i];
    }
  }

  /// One packed panel (row k4: channel j's k0..k3 at bytes 4j..4j+3) -> int16 K pairs:
  /// pair row kp (64 bytes) = channels 0..7 then 8..15, each (k 2kp, k 2kp+1).
  static void widen_panel(const std::uint8_t* b, std::int64_t k4n, std::uint8_t* out) noexcept {
    for (std::int64_t k4 = 0; k4 < k4n; ++k4)
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k4 * 64 + 32 * h));
        // dwords (int16 pairs): lo = c0p0 c0p1 c1p0 c1p1 | c2p0 c2p1 c3p0 c3p1, hi: c4..c7
        const __m256 lo = _mm256_castsi256_ps(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(v)));
        const __m256 hi = _mm256_castsi256_ps(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(v, 1)));
        // p0 = c0p0 c1p0 c4p0 c5p0 | c2p0 c3p0 c6p0 c7p0, then 64-bit blocks 0 2 1 3
        const __m256i p0 = _mm256_permute4x64_epi64(
            _mm256_castps_si256(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8);
        const __m256i p1 = _mm256_permute4x64_epi64(
            _mm256_castps_si256(_mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1))), 0xD8);
        _mm256_store_si256(reinterpret_cast<__m256i*>(out + (2 * k4) * 64 + 32 * h), p0);
        _mm256_store_si256(reinterpret_cast<__m256i*>(out + (2 * k4 + 1) * 64 + 32 * h), p1);
      }
  }

  /// The wide tile: R rows x 16 channels from int16 a' (row stride lda bytes) and an
  /// int16 panel (widen_panel), then the s8 epilogue.
  ///
  /// Register map (R = 6), per K pair kp:
  ///
  ///   ymm acc[r][h]  12: row r, channels 8h .. 8h+7, int32
  ///   ymm w[h]       2: pair row kp, 8 channels x (k 2kp, k 2kp+1) int16
  ///   ymm a          (a'[r][2kp], a'[r][2kp+1]) int16 in every lane (vpbroadcastd)
  ///
  ///   acc[r][h] += vpmaddwd(a, w[h])
  // Twelve named accumulators: GCC 12 spills a __m256i acc[6][2] array to the stack
  // on every K step.
#define LOWBIT_AVX2_WIDE_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
  template <int R>
  static void wide_tile(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                        std::int64_t /*panel_bytes*/, std::int64_t k4n,
                        const detail::tile_epilogue& e, std::int64_t m0, std::int64_t n0) noexcept {
    static_assert(R >= 1 && R <= wide_mr, "wide tile rows");
#define LOWBIT_DECLARE(r) \
  [[maybe_unused]] __m256i c##r##0 = _mm256_setzero_si256(), c##r##1 = _mm256_setzero_si256();
    LOWBIT_AVX2_WIDE_ROWS(LOWBIT_DECLARE)
#undef LOWBIT_DECLARE
    for (std::int64_t kp = 0; kp < 2 * k4n; ++kp) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + kp * 64));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + kp * 64 + 32));
#define LOWBIT_STEP(r)                                              \
  if constexpr (r < R) {                                            \
    const __m256i av = broadcast4(a + (r)*lda + kp * 4);            \
    c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(av, w0)); \
    c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(av, w1)); \
  }
      LOWBIT_AVX2_WIDE_ROWS(LOWBIT_STEP)
#undef LOWBIT_STEP
    }
    std::int32_t p[R * 16];
#define LOWBIT_STORE(r)                                                       \
  if constexpr (r < R) {                                                      \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + (r)*16), c##r##0);     \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + (r)*16 + 8), c##r##1); \
  }
    LOWBIT_AVX2_WIDE_ROWS(LOWBIT_STORE)
#undef LOWBIT_STORE
    detail::finish_s8_tile<R>(e, p, 0, m0, n0);
  }
#undef LOWBIT_AVX2_WIDE_ROWS

  static constexpr int s8_mr = 4;
  static constexpr int s8_panels = 1;
  static constexpr int s4_mr = 4;
  static constexpr bool s4_group_sums = true;
  /// The whole L2 of Haswell..Comet Lake client cores, half of Zen 2/3's.
  static constexpr std::int64_t row_block_bytes = 256 * 1024;

  /// c[MR][16] = sum over packed rows [0, k4n) of (a' - 128) * w; no weight is -128.
  ///
  /// Register map (MR = 4): a packed row is 64 bytes, channels 0..7 then 8..15, each
  /// channel's 4 K bytes together (kr = 4).
  ///
  ///   ymm acc[r][h]  8: row r, channels 8h .. 8h+7, int32
  ///   ymm w[h]       2: row k4 of the panel, 8 channels x (k0 k1 k2 k3) s8
  ///   ymm x          a'[r][4k4 .. 4k4+3] in every lane, xor 0x80: s8 a' - 128
  ///   ymm ax         |x| (u8, <= 128)
  ///   ymm t          vpsignb(w[h], x) -> vpmaddubsw(ax, t): int16 pairs (k0k1)(k2k3)
  ///                  -> vpmaddwd(t, ones): one int32 per channel, channel order
  template <int MR>
  static void s8_sign(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                      std::int64_t k4n, std::int32_t* c) noexcept {
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (std::int64_t k4 = 0; k4 < k4n; ++k4) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k4 * 64));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k4 * 64 + 32));
      for (int r = 0; r < MR; ++r) {
        const __m256i x = _mm256_xor_si256(broadcast4(a + r * lda + 4 * k4), flip);
        const __m256i ax = _mm256_abs_epi8(x);
        const __m256i t0 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w0, x));
        const __m256i t1 = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(w1, x));
        acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(t0, ones));
        acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(t1, ones));
      }
    }
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16 + 8), acc[r][1]);
    }
  }

  /// c[MR][16] = sum over packed s4 rows [kb, ke) of a' * (w + 8), the stored nibbles.
  ///
  /// Register map (MR = 4), per half h (channels 8h .. 8h+7) of two K8 rows:
  ///
  ///   ymm acc[r][h]  8: int32
  ///   ymm l0 h0      row k8:   low nibbles (k0..k3), high nibbles (k4..k7), 8 channels
  ///   ymm l1 h1      row k8+1
  ///   ymm t          sum of 4 vpmaddubsw(a'[r] broadcast, nibbles), int16 <= 30600
  ///                  -> vpmaddwd(t, ones) into acc[r][h]
  template <int MR>
  static void s4_plus8(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                       std::int64_t kb, std::int64_t ke, std::int32_t* c) noexcept {
    const __m256i nib = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    std::int64_t k8 = kb;
    for (; k8 + 2 <= ke; k8 += 2) {
      for (int h = 0; h < 2; ++h) {
        const __m256i v0 =
            _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k8 * 64 + 32 * h));
        const __m256i v1 =
            _mm256_load_si256(reinterpret_cast<const __m256i*>(b + (k8 + 1) * 64 + 32 * h));
        const __m256i l0 = _mm256_and_si256(v0, nib);
        const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib);
        const __m256i l1 = _mm256_and_si256(v1, nib);
        const __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), nib);
        for (int r = 0; r < MR; ++r) {
          const std::uint8_t* ar = a + r * lda + 8 * k8;
          __m256i t = _mm256_maddubs_epi16(broadcast4(ar), l0);
          t = _mm256_add_epi16(t, _mm256_maddubs_epi16(broadcast4(ar + 4), h0));
          t = _mm256_add_epi16(t, _mm256_maddubs_epi16(broadcast4(ar + 8), l1));
          t = _mm256_add_epi16(t, _mm256_maddubs_epi16(broadcast4(ar + 12), h1));
          acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(t, ones));
        }
      }
    }
    if (k8 < ke) {  // an odd last row (groups of 32 K never have one)
      for (int h = 0; h < 2; ++h) {
        const __m256i v0 =
            _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k8 * 64 + 32 * h));
        const __m256i l0 = _mm256_and_si256(v0, nib);
        const __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib);
        for (int r = 0; r < MR; ++r) {
          const std::uint8_t* ar = a + r * lda + 8 * k8;
          __m256i t = _mm256_maddubs_epi16(broadcast4(ar), l0);
          t = _mm256_add_epi16(t, _mm256_maddubs_epi16(broadcast4(ar + 4), h0));
          acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(t, ones));
        }
      }
    }
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16 + 8), acc[r][1]);
    }
  }

  /// c[MR][16] = sum over packed rows [0, k4n) of a' * w, every a' < 128.
  ///
  /// Register map (MR = 4): acc[r][h] 8, w[h] 2 as in s8_sign; a = a'[r][4k4 .. 4k4+3]
  /// in every lane; vpmaddubsw(a, w[h]) -> vpmaddwd(., ones) -> acc[r][h].
  template <int MR>
  static void s8_u7(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                    std::int64_t k4n, std::int32_t* c) noexcept {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (std::int64_t k4 = 0; k4 < k4n; ++k4) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k4 * 64));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k4 * 64 + 32));
      for (int r = 0; r < MR; ++r) {
        const __m256i x = broadcast4(a + r * lda + 4 * k4);
        acc[r][0] =
            _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w0), ones));
        acc[r][1] =
            _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(_mm256_maddubs_epi16(x, w1), ones));
      }
    }
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16 + 8), acc[r][1]);
    }
  }

  /// The table's s8 tile: 7-bit activations straight into vpmaddubsw; otherwise the
  /// sign trick and its -128 fix-up, or the int16 kernel for a panel dense in -128.
  template <int R, int NP>
  static void s8_tile(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                      std::int64_t /*panel_bytes*/, std::int64_t k4n,
                      const detail::tile_epilogue& e, std::int64_t m0, std::int64_t n0) noexcept {
    static_assert(NP == 1, "AVX2 tiles are one panel wide");
    std::int32_t p[R * 16];
    if (e.a_u7) {
      s8_u7<R>(a, lda, b, k4n, p);
      detail::finish_s8_tile<R>(e, p, 0, m0, n0);
      return;
    }
    if (e.min_offsets != nullptr) {
      const std::uint32_t* first = e.min_entries + e.min_offsets[n0 / 16];
      const std::uint32_t* last = e.min_entries + e.min_offsets[n0 / 16 + 1];
      if ((last - first) <= k4n) {  // at most K / 4 entries
        s8_sign<R>(a, lda, b, k4n, p);
        for (; first != last; ++first) {  // each -128 times a' < 128 came out 256 |x| short
          const std::uint32_t k = *first / 16, lane = *first % 16;
          for (int r = 0; r < R; ++r) {
            const std::uint32_t ar = a[r * lda + k];
            if (ar < 128)
              p[r * 16 + lane] =
                  detail::wrap(static_cast<std::uint32_t>(p[r * 16 + lane]) + 256u * (128u - ar));
          }
        }
        detail::finish_s8_tile<R>(e, p, 128, m0, n0);
        return;
      }
    }
    for (int r = 0; r + 2 <= R; r += 2)
      gemm_kernels::s8<2>(a + r * lda, lda, b, 0, k4n, p + r * 16);
    if constexpr (R % 2 == 1)
      gemm_kernels::s8<1>(a + (R - 1) * lda, lda, b, 0, k4n, p + (R - 1) * 16);
    detail::finish_s8_tile<R>(e, p, 0, m0, n0);
  }

  /// The table's s4 tile: per group, the raw sums of s4_plus8 and the group's
  /// epilogue in registers (a C++ loop over 16 x R values per group would cost more
  /// than the group's products at M = 1), then the call's epilogue.
  ///
  ///   v_g = P'_g - 8 group_rowsum[m][g] - za' colsum[n][g]      (int32, wrapping)
  ///   int32 out: tot += v_g       else: f = f + float(v_g) * sw[n][g]  (mul, add)
  template <int R, bool IntOut>
  static void s4_tile(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                      std::int64_t groups, std::int64_t g8, const detail::panel_group* pg,
                      const detail::tile_epilogue& e, std::int64_t m0, std::int64_t n0) noexcept {
    const __m256i za = _mm256_set1_epi32(e.za);
    alignas(32) std::int32_t v[R * 16] = {};
    alignas(32) float f[R * 16] = {};
    for (std::int64_t g = 0; g < groups; ++g) {
      alignas(32) std::int32_t p[R * 16];
      s4_plus8<R>(a, lda, b, g * g8, (g + 1) * g8, p);
      const detail::panel_group& grp = pg[g];
      for (int h = 0; h < 2; ++h) {
        const __m256i zc = _mm256_mullo_epi32(
            za, _mm256_load_si256(reinterpret_cast<const __m256i*>(grp.column_sums + 8 * h)));
        const __m256 sw = _mm256_load_ps(grp.scales + 8 * h);
        for (int r = 0; r < R; ++r) {
          const auto eight = static_cast<std::int32_t>(
              8u * static_cast<std::uint32_t>(e.group_rowsum[(m0 + r) * e.groups + g]));
          const __m256i vg = _mm256_sub_epi32(
              _mm256_sub_epi32(
                  _mm256_load_si256(reinterpret_cast<const __m256i*>(p + r * 16 + 8 * h)),
                  _mm256_set1_epi32(eight)),
              zc);
          if constexpr (IntOut) {
            auto* vr = reinterpret_cast<__m256i*>(v + r * 16 + 8 * h);
            _mm256_store_si256(vr, _mm256_add_epi32(_mm256_load_si256(vr), vg));
          } else {
            float* fr = f + r * 16 + 8 * h;
            _mm256_store_ps(fr, _mm256_add_ps(_mm256_load_ps(fr),
                                              unfused(_mm256_mul_ps(_mm256_cvtepi32_ps(vg), sw))));
          }
        }
      }
    }
    const std::int64_t nc = e.n - n0 < 16 ? e.n - n0 : 16;
    detail::raw_panel_terms t;
    detail::load_raw_panel_terms(e, false, n0, nc, t);
    detail::store_tile(e, t, v, IntOut ? nullptr : f, R, m0, n0, nc);
  }
};

}  // namespace avx2
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX2_GEMM_TILES_HPP_
