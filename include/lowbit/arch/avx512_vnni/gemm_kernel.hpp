// SPDX-License-Identifier: Apache-2.0
// arch/avx512_vnni/gemm_kernel.hpp: zmm vpdpbusd microkernels (s8: up to 7 rows x 48
// channels, s4: up to 8 rows x 16) with the epilogue fused: a tile leaves the registers
// as finished output values.
//
// Tiles (s8: MR <= 7 rows x NP <= 3 panels of 16 channels; s4: MR <= 8 rows x 1 panel):
//
//   zmm acc[r][p]  int32 lanes = channels n0 + 16p .. n0 + 16p + 15 of row r
//   zmm w[p]       one packed row of panel p, 16 channels x 4 K bytes (s8)
//   zmm a          a[r][4k4 .. 4k4+3] broadcast to all 16 lanes (vpbroadcastd m32)
//
//   per k4:  w[p] = load(panel p + 64 k4);  for r: a = bcast(a[r]); for p:
//            acc[r][p] = vpdpbusd(acc[r][p], a, w[p])
//
// Latency: one vpdpbusd chain per accumulator, so fewer than ~6 accumulators (decode,
// M = 1, one panel) would wait on the previous vpdpbusd instead of issuing one per
// cycle. Small tiles therefore keep S accumulator SETS (S = 4 for 1-2 accumulators, 2
// for 3-5, 1 from 6): set s takes k4 = s, s + S, ...; the sets are added at the end
// (integers: exact).
//
// vpdpbusd multiplies u8 (activations) by s8 (weights) and adds the four products of
// each lane to its int32 exactly: no int16 intermediate, no saturation (vpdpbusds is
// the saturating one, not used). s4: one 64-byte load gives two rows of stored nibbles
// u = w + 8 (low and high, an AND and a shift), which vpdpbusd takes as s8 values
// 0..15; each group's sums are folded in registers with the panel_group terms (two
// aligned loads) and 8 * the group's activation sum (detail/gemm/tile.hpp).
//
// The epilogue (detail/gemm/tile.hpp has the math) runs on the accumulators. Its float
// conversions, multiplies and adds use embedded rounding {rn-sae} (round to nearest
// even, the default MXCSR mode the reference assumes): compilers treat these as opaque
// and never contract a multiply and an add into an FMA, which would round once instead
// of twice and break bit-exactness with the reference, whatever -ffp-contract says.
#ifndef LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_HPP_
#define LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_HPP_

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/gemm/tile.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>
#include <cstring>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX512_VNNI)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx512_vnni {

inline __m512i bcast4(const std::uint8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/// acc += dot4(a_u8, w_s8) per lane. On GCC, inline asm with a tied "+v" operand:
/// with the intrinsic, GCC 12 allocates the loop-carried accumulator and the
/// instruction's destination to different registers and adds two zmm copies per
/// vpdpbusd. Clang allocates the intrinsic well.
LOWBIT_ALWAYS_INLINE void dpbusd(__m512i& acc, __m512i a, __m512i w) noexcept {
#if defined(__GNUC__) && !defined(__clang__)
  __asm__("vpdpbusd {%2, %1, %0|%0, %1, %2}" : "+v"(acc) : "v"(a), "v"(w));
#else
  acc = _mm512_dpbusd_epi32(acc, a, w);
#endif
}

constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
inline __m512 fmul(__m512 a, __m512 b) noexcept { return _mm512_mul_round_ps(a, b, kRne); }
inline __m512 fadd(__m512 a, __m512 b) noexcept { return _mm512_add_round_ps(a, b, kRne); }
inline __m512 to_float(__m512i v) noexcept { return _mm512_cvt_roundepi32_ps(v, kRne); }
/// `v < lo ? lo : (v > hi ? hi : v)`: vmaxps/vminps return their SECOND operand on
/// ties (+0 vs -0) and NaN, so the bound goes first.
inline __m512 fclamp(__m512 v, __m512 lo, __m512 hi) noexcept {
  return _mm512_min_ps(hi, _mm512_max_ps(lo, v));
}

/// Lanes n0 .. min(n0 + 16, n) - 1.
inline __mmask16 lane_mask(std::int64_t n0, std::int64_t n) noexcept {
  const std::int64_t left = n - n0;
  return left >= 16 ? static_cast<__mmask16>(0xFFFF)
                    : static_cast<__mmask16>((1u << static_cast<unsigned>(left)) - 1u);
}

/// Accumulator sets for MR rows (see the file comment).
template <int MR>
constexpr int accumulator_sets() noexcept {
  return MR >= 6 ? 1 : MR >= 3 ? 2 : 4;
}

/// The s8 epilogue of detail/gemm/tile.hpp for the 16 channels n0.., one row at a
/// time: the per-channel terms are loaded once per tile, each row costs a few ops.
/// Rows are passed by value so the accumulators never need an address (GCC keeps
/// an array whose address escapes in memory and copies it every iteration).
class s8_finisher {
 public:
  s8_finisher(const detail::tile_epilogue& e, std::int64_t n0) noexcept
      : e_(e), n0_(n0), mask_(lane_mask(n0, e.n)) {
    zc_ =
        _mm512_mullo_epi32(_mm512_set1_epi32(e.za), _mm512_maskz_loadu_epi32(mask_, e.colsum + n0));
    if (e.zw) {
      zw_ = _mm512_maskz_loadu_epi32(mask_, e.zw + n0);
      kzw_ = _mm512_mullo_epi32(_mm512_set1_epi32(e.kza), zw_);
    }
    switch (e.type) {
      case detail::tile_epilogue::kind::int32:
        break;
      case detail::tile_epilogue::kind::f32:
        s_ = _mm512_maskz_loadu_ps(mask_, e.sw + n0);
        if (e.bias) bias_ = _mm512_maskz_loadu_ps(mask_, e.bias + n0);
        lo_ = _mm512_set1_ps(e.lo);
        hi_ = _mm512_set1_ps(e.hi);
        break;
      case detail::tile_epilogue::kind::requantize:
        s_ = _mm512_maskz_loadu_ps(mask_, e.mult + n0);
        zy_ = _mm512_set1_ps(static_cast<float>(e.zy));
        lo_ = _mm512_set1_ps(static_cast<float>(e.lo_q));
        hi_ = _mm512_set1_ps(static_cast<float>(e.hi_q));
        if (e.bias_q) {
          const __m512i bq = _mm512_maskz_loadu_epi32(mask_, e.bias_q + n0);
          bq_lo_ = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(bq));
          bq_hi_ = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(bq, 1));
        }
        break;
    }
  }

  /// Finishes row m from its raw products P (16 int32 lanes) and stores it.
  void store(std::int64_t m, __m512i p) const noexcept {
    __m512i v = _mm512_sub_epi32(p, zc_);
    if (e_.zw)
      v = _mm512_add_epi32(
          _mm512_sub_epi32(v, _mm512_mullo_epi32(zw_, _mm512_set1_epi32(e_.rowsum[m]))), kzw_);
    const std::int64_t at = m * e_.ldy + n0_;
    switch (e_.type) {
      case detail::tile_epilogue::kind::int32:
        _mm512_mask_storeu_epi32(static_cast<std::int32_t*>(e_.y) + at, mask_, v);
        return;
      case detail::tile_epilogue::kind::f32: {
        const __m512 s = fmul(_mm512_set1_ps(e_.sx_per_row ? e_.sx[m] : e_.sx[0]), s_);
        __m512 f = fmul(to_float(v), s);
        if (e_.bias) f = fadd(f, bias_);
        _mm512_mask_storeu_ps(static_cast<float*>(e_.y) + at, mask_, fclamp(f, lo_, hi_));
        return;
      }
      case detail::tile_epilogue::kind::requantize: {
        __m512 f;
        if (e_.bias_q) {  // int64(v) + bias_q, rounded once to float
          const __m256 l = _mm512_cvt_roundepi64_ps(
              _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)), bq_lo_), kRne);
          const __m256 h = _mm512_cvt_roundepi64_ps(
              _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1)), bq_hi_),
              kRne);
          f = _mm512_insertf32x8(_mm512_castps256_ps512(l), h, 1);
        } else {
          f = to_float(v);
        }
        f = _mm512_roundscale_ps(fmul(f, s_), kRne);
        const __m512i q = _mm512_cvttps_epi32(fclamp(fadd(zy_, f), lo_, hi_));
        _mm512_mask_cvtepi32_storeu_epi8(static_cast<std::uint8_t*>(e_.y) + at, mask_, q);
        return;
      }
    }
  }

 private:
  const detail::tile_epilogue& e_;
  std::int64_t n0_;
  __mmask16 mask_;
  __m512i zc_, zw_ = _mm512_setzero_si512(), kzw_ = _mm512_setzero_si512();
  __m512i bq_lo_ = _mm512_setzero_si512(), bq_hi_ = _mm512_setzero_si512();
  __m512 s_ = _mm512_setzero_ps(), bias_ = _mm512_setzero_ps(), lo_ = _mm512_setzero_ps(),
         hi_ = _mm512_setzero_ps(), zy_ = _mm512_setzero_ps();
};

struct gemm_kernels {
  static constexpr int s4_mr = 8;      ///< s4 rows per tile
  static constexpr int s8_mr = 7;      ///< s8 rows per tile
  static constexpr int s8_panels = 3;  ///< s8 panels (x 16 channels) per tile
  /// s4 tiles feed the stored w + 8 to vpdpbusd and remove the + 8 per group with
  /// the group's activation sum (tile_epilogue::group_rowsum).
  static constexpr bool s4_group_sums = true;
  /// Row blocks of up to 512 KiB: AVX-512 cores have >= 1 MiB of L2 (Skylake-SP, Ice
  /// Lake server, Sapphire Rapids, Zen 4); all of Ice Lake client's.
  static constexpr std::int64_t row_block_bytes = 512 * 1024;

  /// P = a'[MR x 4 k4n] * NP panels (panel_bytes apart), then the s8 epilogue for
  /// rows m0.. and channels n0 .. n0 + 16 NP - 1. Register map at MR = 7, NP = 3:
  ///   zmm acc[r][p]  21 accumulators: row r, panel p (16 channels)
  ///   zmm w[p]       3: row k4 of each panel (64 bytes)
  ///   zmm a          1: a[r][4k4 .. 4k4+3] broadcast
  /// per k4: 3 loads, 7 broadcasts, 21 vpdpbusd: 25 of the 32 zmm registers.
  template <int MR, int NP>
  static void s8_tile(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                      std::int64_t panel_bytes, std::int64_t k4n, const detail::tile_epilogue& e,
                      std::int64_t m0, std::int64_t n0) noexcept {
    constexpr int S = accumulator_sets<MR * NP>();
    __m512i acc[S][MR][NP];
    LOWBIT_FOR_UNROLLED (int s = 0; s < S; ++s)
      LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r)
        LOWBIT_FOR_UNROLLED (int p = 0; p < NP; ++p) acc[s][r][p] = _mm512_setzero_si512();
    std::int64_t k4 = 0;
    for (; k4 + S <= k4n; k4 += S)
      LOWBIT_FOR_UNROLLED (int s = 0; s < S; ++s) {
        __m512i w[NP];
        LOWBIT_FOR_UNROLLED (int p = 0; p < NP; ++p)
          w[p] = _mm512_load_si512(b + p * panel_bytes + (k4 + s) * 64);
        LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r) {
          const __m512i av = bcast4(a + r * lda + 4 * (k4 + s));
          LOWBIT_FOR_UNROLLED (int p = 0; p < NP; ++p) dpbusd(acc[s][r][p], av, w[p]);
        }
      }
    if constexpr (S > 1) {  // (S == 1: the loop above ran every k4)
      for (; k4 < k4n; ++k4) {
        __m512i w[NP];
        LOWBIT_FOR_UNROLLED (int p = 0; p < NP; ++p)
          w[p] = _mm512_load_si512(b + p * panel_bytes + k4 * 64);
        LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r) {
          const __m512i av = bcast4(a + r * lda + 4 * k4);
          LOWBIT_FOR_UNROLLED (int p = 0; p < NP; ++p) dpbusd(acc[0][r][p], av, w[p]);
        }
      }
    }
    LOWBIT_FOR_UNROLLED (int p = 0; p < NP; ++p) {
      const s8_finisher fin(e, n0 + 16 * p);
      LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r) {
        __m512i v = acc[0][r][p];
        LOWBIT_FOR_UNROLLED (int s = 1; s < S; ++s) v = _mm512_add_epi32(v, acc[s][r][p]);
        fin.store(m0 + r, v);
      }
    }
  }

  /// s4: all groups of the panel, folded per group; IntOut selects the int32 sum
  /// (int32 epilogue) or the float sum (f32 epilogue).
  template <int MR, bool IntOut>
  static void s4_tile(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                      std::int64_t groups, std::int64_t g8, const detail::panel_group* pg,
                      const detail::tile_epilogue& e, std::int64_t m0, std::int64_t n0) noexcept {
    // Sets: S = 1 lo and hi share acc[0]; S = 2 lo -> 0, hi -> 1; S = 4 also alternates
    // k8 (g8 is a multiple of 4, group sizes being multiples of 32).
    constexpr int S = accumulator_sets<MR>();
    constexpr int U = S == 4 ? 2 : 1;  // k8 steps per iteration
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i za = _mm512_set1_epi32(e.za);
    __m512i tot[MR];
    __m512 ftot[MR];
    LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r) {
      tot[r] = _mm512_setzero_si512();
      ftot[r] = _mm512_setzero_ps();
    }
    for (std::int64_t g = 0; g < groups; ++g) {
      __m512i acc[S][MR];
      LOWBIT_FOR_UNROLLED (int s = 0; s < S; ++s)
        LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r) acc[s][r] = _mm512_setzero_si512();
      for (std::int64_t k8 = g * g8; k8 < (g + 1) * g8; k8 += U)
        LOWBIT_FOR_UNROLLED (int u = 0; u < U; ++u) {
          const __m512i v = _mm512_load_si512(b + (k8 + u) * 64);
          const __m512i lo = _mm512_and_si512(v, nib);  // w + 8, a valid s8
          const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
          const int s_lo = (2 * u) % S, s_hi = (2 * u + 1) % S;
          LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r) {
            const std::uint8_t* ar = a + r * lda + 8 * (k8 + u);
            dpbusd(acc[s_lo][r], bcast4(ar), lo);
            dpbusd(acc[s_hi][r], bcast4(ar + 4), hi);
          }
        }
      const __m512i zc =
          _mm512_mullo_epi32(za, _mm512_load_si512(static_cast<const void*>(pg[g].column_sums)));
      const __m512 sw = _mm512_load_ps(pg[g].scales);
      LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r) {
        __m512i v = acc[0][r];
        LOWBIT_FOR_UNROLLED (int s = 1; s < S; ++s) v = _mm512_add_epi32(v, acc[s][r]);
        // - 8 * rowsum[m][g] (wrapping shift: exact mod 2^32 like every correction)
        v = _mm512_sub_epi32(
            _mm512_sub_epi32(v, zc),
            _mm512_slli_epi32(_mm512_set1_epi32(e.group_rowsum[(m0 + r) * e.groups + g]), 3));
        if constexpr (IntOut) {
          tot[r] = _mm512_add_epi32(tot[r], v);
        } else {
          ftot[r] = fadd(ftot[r], fmul(to_float(v), sw));
        }
      }
    }
    const __mmask16 mask = lane_mask(n0, e.n);
    if constexpr (IntOut) {
      auto* y = static_cast<std::int32_t*>(e.y);
      LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r)
        _mm512_mask_storeu_epi32(y + (m0 + r) * e.ldy + n0, mask, tot[r]);
    } else {
      auto* y = static_cast<float*>(e.y);
      const __m512 bias = e.bias ? _mm512_maskz_loadu_ps(mask, e.bias + n0) : _mm512_setzero_ps();
      const __m512 lo = _mm512_set1_ps(e.lo), hi = _mm512_set1_ps(e.hi);
      LOWBIT_FOR_UNROLLED (int r = 0; r < MR; ++r) {
        __m512 f = fmul(ftot[r], _mm512_set1_ps(e.sx_per_row ? e.sx[m0 + r] : e.sx[0]));
        if (e.bias) f = fadd(f, bias);
        _mm512_mask_storeu_ps(y + (m0 + r) * e.ldy + n0, mask, fclamp(f, lo, hi));
      }
    }
  }
};

}  // namespace avx512_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_HPP_
