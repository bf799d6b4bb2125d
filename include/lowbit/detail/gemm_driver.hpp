// SPDX-License-Identifier: Apache-2.0
// detail/gemm_driver.hpp: validation, activation preparation, the loop nest and the
// epilogue of lowbit::gemm, shared by every ISA.
//
// The computation, as loops (BLIS names; the kernel is the innermost block):
//
//   prepare:  a'[m][k] = x[m][k] as u8 (int8 input: x + 128), K padded with zeros to
//             a multiple of 4; rowsum[m] = sum_k a'[m][k] when s8 weights have zero
//             points; group_rowsum[m][g] (sum over group g) for s4 on a fused kernel
//   parallel over panels p (16 output channels each; static split = deterministic)
//     for row blocks mb of mc rows (row_block: mc x K bytes of a' stay in L2)
//     for each panel p (fused s8: group of up to s8_panels panels) of this thread
//     for m0 in mb, mb + MR, ...                       (MR rows of the ISA's kernel)
//       unfused s8: P[MR][16] = kernel::s8<MR>(a' rows, panel p, all K)
//                   epilogue(P) -> y rows m0.., channels 16p..     (store_rows)
//       unfused s4: for each group g: P_g = kernel::s4<MR>(a' rows, panel p, group g)
//                   (the kernel subtracts the stored + 8 in bytes)
//                   acc += P_g - za' colsum[n][g]; facc += float(P_g - za' colsum[n][g]) * sw[n][g]
//                   epilogue(acc, facc)
//       fused:      kernel::s8_tile / s4_tile: all of K (all groups) and the epilogue
//                   in registers (detail/gemm_tile.hpp has the math, including the
//                   s4 term - 8 group_rowsum[m][g])
//
// Kernels (arch/<isa>/gemm_kernel.hpp) are plain functions in target regions, called
// once per tile: the driver itself is baseline code, so it never executes an
// instruction the CPU lacks. All integer corrections use wrap-around uint32
// arithmetic, exact because the final sum fits int32 (max_k()).
//
// Fused kernels (AVX-512 VNNI) resolve the per-call terms once into a tile_epilogue;
// unfused ones (AVX2, AVX-VNNI, portable) write the raw int32 tile and the driver
// finishes it on per-panel terms (store_rows). Both compute the same values,
// operation for operation; tests compare every path with lowbit::reference.
#ifndef LOWBIT_DETAIL_GEMM_DRIVER_HPP_
#define LOWBIT_DETAIL_GEMM_DRIVER_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "lowbit/arch/avx2/gemm_kernel.hpp"
#include "lowbit/arch/avx512_vnni/gemm_kernel.hpp"
#include "lowbit/arch/avx_vnni/gemm_kernel.hpp"
#include "lowbit/arch/portable/gemm_kernel.hpp"
#include "lowbit/detail/aligned_buffer.hpp"
#include "lowbit/detail/gemm_tile.hpp"
#include "lowbit/detail/macros.hpp"
#include "lowbit/detail/rounding.hpp"
#include "lowbit/detail/threading.hpp"
#include "lowbit/error.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>  // SSE2 only, outside target regions: x86-64's baseline
#endif

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// A validated call with everything the epilogue derives once per call.
struct gemm_call {
  const activations* x;
  const packed_weights* w;
  const epilogue* e;
  output y;
  int threads;
  std::int32_t za;                   ///< activation zero point in the kernels' u8 domain
  std::vector<float> mult;           ///< requantize: per channel
  std::vector<std::int32_t> bias_q;  ///< requantize: per channel (0 without bias)
  std::int32_t lo_q = 0, hi_q = 0;   ///< requantize clamp
};

inline gemm_call validate_gemm(const activations& x, const packed_weights& w, const epilogue& e,
                               const output& y, const gemm_context& ctx) {
  if (w.n() == 0) fail("gemm: the packed_weights object is empty");
  if (!is_available(w.level()))
    fail("gemm: weights were packed for isa ", to_string(w.level()), ", not available here");
  if (x.type != dtype::uint8 && x.type != dtype::int8)
    fail("gemm: activations must be uint8 or int8, got ", to_string(x.type));
  if (x.m < 0) fail("gemm: M = ", x.m, " is negative");
  if (x.k != w.k()) fail("gemm: activations have K = ", x.k, " but weights have K = ", w.k());
  if (x.ld < x.k) fail("gemm: activation row stride ", x.ld, " < K = ", x.k);
  if (x.m > 0 && x.data == nullptr) fail("gemm: activation data is null");
  if (x.type == dtype::int8 && x.zero_point != 0)
    fail("gemm: int8 activations are symmetric (zero point 0), got zero point ", x.zero_point);
  if (x.type == dtype::uint8 && (x.zero_point < 0 || x.zero_point > 255))
    fail("gemm: uint8 activation zero point ", x.zero_point, " outside [0, 255]");
  if (y.ld < w.n()) fail("gemm: output row stride ", y.ld, " < N = ", w.n());
  if (x.m > 0 && y.data == nullptr) fail("gemm: output data is null");
  if (ctx.threads < 1) fail("gemm: threads must be >= 1, got ", ctx.threads);

  gemm_call c{&x, &w, &e, y, ctx.threads, x.type == dtype::int8 ? 128 : x.zero_point, {}, {}, 0, 0};
  const auto n = static_cast<std::size_t>(w.n());
  const bool need_scales = e.type != epilogue::kind::int32;
  if (need_scales) {
    if (x.scales.size() != 1 && static_cast<std::int64_t>(x.scales.size()) != x.m)
      fail("gemm: ", x.scales.size(), " activation scales for M = ", x.m, " (need 1 or M)");
    for (std::size_t i = 0; i < x.scales.size(); ++i)
      if (!(x.scales[i] > 0.0f) || !std::isfinite(x.scales[i]))
        fail("gemm: activation scale[", i, "] = ", x.scales[i], " must be finite and > 0");
    if (!e.bias.empty() && e.bias.size() != n)
      fail("gemm: bias has ", e.bias.size(), " entries for N = ", n);
    for (std::size_t i = 0; i < e.bias.size(); ++i)
      if (!std::isfinite(e.bias[i])) fail("gemm: bias[", i, "] = ", e.bias[i], " is not finite");
  }
  switch (e.type) {
    case epilogue::kind::int32:
      if (y.type != output::kind::int32) fail("gemm: the int32 epilogue needs an int32_t output");
      break;
    case epilogue::kind::f32:
      if (y.type != output::kind::f32) fail("gemm: the f32 epilogue needs a float output");
      if (!(e.lo <= e.hi)) fail("gemm: clamp [", e.lo, ", ", e.hi, "] is empty or NaN");
      break;
    case epilogue::kind::requantize: {
      if (w.format() != weight_format::s8)
        fail("gemm: the requantize epilogue needs s8 weights (s4 per-group sums are float)");
      if (e.out_type != dtype::uint8 && e.out_type != dtype::int8)
        fail("gemm: requantize output must be uint8 or int8, got ", to_string(e.out_type));
      if ((e.out_type == dtype::uint8) != (y.type == output::kind::u8) ||
          (e.out_type == dtype::int8) != (y.type == output::kind::s8))
        fail("gemm: requantize to ", to_string(e.out_type), " needs a matching output buffer");
      if (x.scales.size() != 1)
        fail("gemm: requantize needs a per-tensor activation scale, got ", x.scales.size());
      if (!(e.out_scale > 0.0f) || !std::isfinite(e.out_scale))
        fail("gemm: requantize output scale ", e.out_scale, " must be finite and > 0");
      c.lo_q = dtype_min(e.out_type);
      c.hi_q = dtype_max(e.out_type);
      if (e.out_zero_point < c.lo_q || e.out_zero_point > c.hi_q)
        fail("gemm: requantize output zero point ", e.out_zero_point, " outside ",
             to_string(e.out_type), " range");
      if (e.fuse_relu) c.lo_q = e.out_zero_point;
      c.mult.resize(n);
      c.bias_q.assign(n, 0);
      for (std::size_t j = 0; j < n; ++j) {
        const float sxw = x.scales[0] * w.scales()[j];
        c.mult[j] = sxw / e.out_scale;
        if (!(c.mult[j] > 0.0f) || !std::isfinite(c.mult[j]))
          fail("gemm: requantize multiplier for channel ", j, " = ", c.mult[j],
               " is not finite and > 0");
        if (!e.bias.empty()) {
          const float b = round_half_even(e.bias[j] / sxw);
          if (!(std::abs(b) < 1073741824.0f))
            fail("gemm: bias[", j, "] = ", e.bias[j], " is out of int32 range once quantized");
          c.bias_q[j] = static_cast<std::int32_t>(b);
        }
      }
      break;
    }
  }
  return c;
}

/// Row stride of the prepared activations for `kp` bytes per row: rounded up to a
/// multiple of 64 so rows start on cache lines. (Padding strides that are multiples
/// of 1024, so the rows of a tile fall in different L1 sets, was measured and
/// dropped: no change for the 7 x 3-panel AVX-512 tile, 10-25% slower for the AVX2
/// kernel at K = 1024 and 2048.)
constexpr std::int64_t activation_stride(std::int64_t kp) noexcept { return (kp + 63) / 64 * 64; }

/// Activations in the kernels' u8 domain, K padded with zeros to `kp` (and the row
/// stride to activation_stride(kp)). Small calls (decode, small layers: where the
/// allocation would cost as much as the GEMM) use a buffer kept per calling thread,
/// valid until that thread's next gemm call (gemm never calls itself; the workers
/// only read it while the caller waits); larger ones own theirs, so no thread retains
/// more than kCachedBytes.
struct prepared_activations {
  static constexpr std::size_t kCachedBytes = 256 * 1024;
  prepared_activations() = default;
  prepared_activations(const prepared_activations&) = delete;  // data may point into owned
  prepared_activations& operator=(const prepared_activations&) = delete;
  const std::uint8_t* data = nullptr;
  std::int64_t ld = 0;
  /// sum_k a'[m][k] over the row (s8 with weight zero points) or over each group
  /// (s4: [M x groups], for the w + 8 storage); null when not needed.
  const std::int32_t* rowsum = nullptr;
  aligned_buffer owned;
  std::vector<std::int32_t> owned_rowsum;
};

/// d[k] = s[k] ^ flip for k < n; returns sum_k d[k]. SSE2 (x86-64's baseline) when
/// available: psadbw sums 16 bytes into two 64-bit lanes.
inline std::int32_t flip_copy_sum(const std::uint8_t* LOWBIT_RESTRICT s,
                                  std::uint8_t* LOWBIT_RESTRICT d, std::int64_t n,
                                  std::uint8_t flip) noexcept {
  std::int64_t k = 0;
  std::uint64_t sum = 0;
#if LOWBIT_HAVE_X86_DISPATCH
  const __m128i f = _mm_set1_epi8(static_cast<char>(flip)), zero = _mm_setzero_si128();
  __m128i acc = zero;
  for (; k + 16 <= n; k += 16) {
    const __m128i v = _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k)), f);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + k), v);
    acc = _mm_add_epi64(acc, _mm_sad_epu8(v, zero));
  }
  sum = static_cast<std::uint64_t>(_mm_cvtsi128_si64(acc)) +
        static_cast<std::uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(acc, acc)));
#endif
  for (; k < n; ++k) {
    d[k] = static_cast<std::uint8_t>(s[k] ^ flip);
    sum += d[k];
  }
  return static_cast<std::int32_t>(sum);  // <= 255 * max_k < 2^31
}

/// `sum_span`: 0 = no sums, else the K span of one sum (K for s8, the group size
/// for s4).
inline void prepare_activations(const activations& x, std::int64_t kp, std::int64_t sum_span,
                                prepared_activations& p) {
  thread_local aligned_buffer cache;  // allocated by the thread's first small call
  thread_local std::vector<std::int32_t> cache_rowsum;
  p.ld = activation_stride(kp);
  const auto bytes = static_cast<std::size_t>(x.m * p.ld);
  std::uint8_t* base;
  if (bytes <= prepared_activations::kCachedBytes) {
    if (cache.size() == 0)
      cache = aligned_buffer(prepared_activations::kCachedBytes, aligned_buffer::uninitialized);
    base = cache.data();
  } else {
    p.owned = aligned_buffer(bytes, aligned_buffer::uninitialized);  // every byte is written
    base = p.owned.data();
  }
  const std::int64_t spans = sum_span > 0 ? (x.k + sum_span - 1) / sum_span : 0;
  std::int32_t* sums = nullptr;
  if (spans > 0) {
    std::vector<std::int32_t>& v =
        bytes <= prepared_activations::kCachedBytes ? cache_rowsum : p.owned_rowsum;
    v.resize(static_cast<std::size_t>(x.m * spans));
    sums = v.data();
  }
  const auto* src = static_cast<const std::uint8_t*>(x.data);
  const std::uint8_t flip = x.type == dtype::int8 ? 0x80 : 0x00;
  for (std::int64_t m = 0; m < x.m; ++m) {
    std::uint8_t* d = base + m * p.ld;
    if (spans == 0) {
      flip_copy_sum(src + m * x.ld, d, x.k, flip);
    } else {
      for (std::int64_t g = 0; g < spans; ++g) {
        const std::int64_t k0 = g * sum_span, len = std::min(sum_span, x.k - k0);
        sums[m * spans + g] = flip_copy_sum(src + m * x.ld + k0, d + k0, len, flip);
      }
    }
    std::memset(d + x.k, 0, static_cast<std::size_t>(p.ld - x.k));
  }
  p.data = base;
  p.rowsum = sums;
}

inline std::int32_t wrap(std::uint32_t v) noexcept {
  std::int32_t r;
  std::memcpy(&r, &v, 4);
  return r;
}

/// Requantizes one output element from its exact int32 sum (s8 weights only).
inline void store_requantized(const gemm_call& c, std::int64_t m, std::int64_t n,
                              std::int32_t acc) noexcept {
  const auto j = static_cast<std::size_t>(n);
  // acc + bias_q in int64 (it may leave the int32 range), rounded once to float.
  const float a = static_cast<float>(static_cast<std::int64_t>(acc) + c.bias_q[j]);
  const std::int32_t q = quantize_one(a, c.mult[j], c.e->out_zero_point, c.lo_q, c.hi_q);
  static_cast<std::uint8_t*>(c.y.data)[m * c.y.ld + n] = static_cast<std::uint8_t>(q & 0xFF);
}

/// Rows per block: the loop nests keep a block of prepared activations (rows x ld
/// bytes) in L2 while every panel of the thread streams past it; without blocks, all
/// of A would be read once per panel, and each block costs one pass over the weights.
/// `budget` is a share of the L2: 256 KiB on the unfused paths (the whole L2 of
/// Haswell..Comet Lake client cores, half of Zen 2/3's), 512 KiB on AVX-512 (a half
/// to a quarter of Skylake-SP, Sapphire Rapids and Zen 4's 1-2 MiB; all of Ice Lake
/// client's). Blocks are balanced and a multiple of the tile height: at a budget of
/// 256 KiB, M = 128 and K = 4096 run blocks of 49, 49, 30 rows (7-row tiles), not
/// 63, 63, 2 (a third pass over all the weights for 2 rows).
inline std::int64_t row_block(std::int64_t m, std::int64_t ld, int mr,
                              std::int64_t budget) noexcept {
  const std::int64_t most =
      std::max<std::int64_t>(mr, budget / std::max<std::int64_t>(ld, 1) / mr * mr);
  const std::int64_t blocks = (m + most - 1) / most;
  const std::int64_t rows = (m + blocks - 1) / std::max<std::int64_t>(blocks, 1);
  return std::max<std::int64_t>(mr, (rows + mr - 1) / mr * mr);
}

/// Threads worth waking for a call of m * n * k multiply-adds: handing work to a
/// thread costs a few microseconds, so each thread gets at least 2^18 (~1 us of
/// AVX-512 VNNI work). Results do not depend on the count (static panel split).
inline int useful_threads(int threads, std::int64_t m, std::int64_t n, std::int64_t k) noexcept {
  const std::int64_t work = m * n * std::max<std::int64_t>(k, 1);
  const std::int64_t most = std::max<std::int64_t>(1, work >> 18);
  return static_cast<int>(std::min<std::int64_t>(threads, most));
}

/// Calls Kernel::s8<R> / s4<R> for a runtime row count 1 <= rows <= Kernel::mr.
template <class Kernel, bool S4, int R = Kernel::mr>
inline void call_kernel(int rows, const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                        std::int64_t kb, std::int64_t ke, std::int32_t* tile) noexcept {
  if constexpr (R >= 1) {
    if (rows == R) {
      if constexpr (S4) {
        Kernel::template s4<R>(a, lda, b, kb, ke, tile);
      } else {
        Kernel::template s8<R>(a, lda, b, kb, ke, tile);
      }
      return;
    }
    call_kernel<Kernel, S4, R - 1>(rows, a, lda, b, kb, ke, tile);
  }
}

/// The per-channel epilogue terms of one panel, padded to 16 lanes (zeros past N),
/// so the unfused epilogue below runs fixed-length loops over contiguous arrays that
/// the compiler vectorizes (SSE2 at x86-64's baseline) instead of a per-element switch.
struct panel_terms {
  alignas(64) std::uint32_t zc[16] = {};  ///< za' * colsum[n] (s8)
  std::uint32_t zw[16] = {};              ///< zw[n] (s8 affine)
  std::uint32_t kzw[16] = {};             ///< K * za' * zw[n] (s8 affine)
  float sw[16] = {};                      ///< s8 weight scales
  float bias[16] = {};
  float mult[16] = {};  ///< requantize
};

inline void load_panel_terms(const gemm_call& c, std::int64_t n0, std::int64_t nc,
                             panel_terms& t) noexcept {
  const packed_weights& w = *c.w;
  const auto za = static_cast<std::uint32_t>(c.za);
  t = panel_terms{};
  for (std::int64_t j = 0; j < nc; ++j) {
    const auto n = static_cast<std::size_t>(n0 + j);
    if (w.format() == weight_format::s8) {
      t.zc[j] = za * static_cast<std::uint32_t>(w.column_sums()[n]);
      if (w.has_zero_points()) {
        t.zw[j] = static_cast<std::uint32_t>(w.zero_points()[n]);
        t.kzw[j] = static_cast<std::uint32_t>(w.k()) * za * t.zw[j];
      }
      t.sw[j] = w.scales()[n];
    }
    if (!c.e->bias.empty()) t.bias[j] = c.e->bias[n];
    if (!c.mult.empty()) t.mult[j] = c.mult[n];
  }
}

/// Writes rows m0 .. m0 + rows - 1, channels n0 .. n0 + nc - 1 from the exact int32
/// sums v[r][16] (and, s4 f32, the float sums f[r][16]): the operations of
/// lowbit::reference::gemm, lane-parallel for the int32 and f32 epilogues.
inline void store_rows(const gemm_call& c, const panel_terms& t, const std::int32_t* v,
                       const float* f, int rows, std::int64_t m0, std::int64_t n0,
                       std::int64_t nc) noexcept {
  const epilogue& e = *c.e;
  const bool s8 = c.w->format() == weight_format::s8;
  for (int r = 0; r < rows; ++r) {
    const std::int64_t m = m0 + r;
    const std::int32_t* vr = v + r * 16;
    switch (e.type) {
      case epilogue::kind::int32:
        std::memcpy(static_cast<std::int32_t*>(c.y.data) + m * c.y.ld + n0, vr,
                    static_cast<std::size_t>(nc) * 4);
        break;
      case epilogue::kind::f32: {
        const float sx =
            c.x->scales.size() == 1 ? c.x->scales[0] : c.x->scales[static_cast<std::size_t>(m)];
        const bool bias = !e.bias.empty();
        const float lo = e.lo, hi = e.hi;
        float out[16];
        for (int j = 0; j < 16; ++j) {
          float y = s8 ? static_cast<float>(vr[j]) * (sx * t.sw[j]) : f[r * 16 + j] * sx;
          if (bias) y = y + t.bias[j];
          y = y < lo ? lo : (y > hi ? hi : y);
          out[j] = y;
        }
        std::memcpy(static_cast<float*>(c.y.data) + m * c.y.ld + n0, out,
                    static_cast<std::size_t>(nc) * 4);
        break;
      }
      case epilogue::kind::requantize:
        for (std::int64_t j = 0; j < nc; ++j) store_requantized(c, m, n0 + j, vr[j]);
        break;
    }
  }
}

template <class Kernel>
inline void run_panels(const gemm_call& c, const prepared_activations& a, std::int64_t p_begin,
                       std::int64_t p_end) {
  constexpr int MR = Kernel::mr;
  const packed_weights& w = *c.w;
  const std::int64_t M = c.x->m, N = w.n(), K = w.k();
  const bool s4 = w.format() == weight_format::s4;
  const bool affine = w.has_zero_points();
  const std::int64_t groups = w.groups();
  const std::uint32_t za = static_cast<std::uint32_t>(c.za);
  std::int32_t tile[MR * 16];
  std::int32_t v[MR * 16];
  panel_terms terms;
  // Row blocks whose prepared activations stay in L2 (see row_block).
  const std::int64_t mc = row_block(M, a.ld, MR, 256 * 1024);
  for (std::int64_t mb = 0; mb < M; mb += mc)
    for (std::int64_t p = p_begin; p < p_end; ++p) {
      const std::uint8_t* panel = w.data() + p * w.panel_bytes();
      const std::int64_t n0 = p * 16, nc = std::min<std::int64_t>(16, N - n0);
      load_panel_terms(c, n0, nc, terms);
      for (std::int64_t m0 = mb; m0 < std::min(M, mb + mc); m0 += MR) {
        const int rows = static_cast<int>(std::min<std::int64_t>(MR, M - m0));
        const std::uint8_t* arow = a.data + m0 * a.ld;
        if (!s4) {
          call_kernel<Kernel, false>(rows, arow, a.ld, panel, 0, (K + 3) / 4, tile);
          for (int r = 0; r < rows; ++r) {
            // v = P - za' colsum [- zw rowsum + K za' zw], wrapping uint32 (exact)
            const auto rs = affine ? static_cast<std::uint32_t>(a.rowsum[m0 + r]) : 0u;
            for (int j = 0; j < 16; ++j)
              v[r * 16 + j] = wrap(static_cast<std::uint32_t>(tile[r * 16 + j]) - terms.zc[j] -
                                   terms.zw[j] * rs + terms.kzw[j]);
          }
          store_rows(c, terms, v, nullptr, rows, m0, n0, nc);
        } else {
          float facc[MR * 16] = {};
          for (int i = 0; i < MR * 16; ++i) v[i] = 0;
          const std::int64_t g8 = w.group_size() / 8;
          const packed_weights::panel_group* pg = w.panel_groups(p);
          for (std::int64_t g = 0; g < groups; ++g) {
            call_kernel<Kernel, true>(rows, arow, a.ld, panel, g * g8, (g + 1) * g8, tile);
            for (int r = 0; r < rows; ++r)
              for (int j = 0; j < 16; ++j) {
                const std::int32_t vg = wrap(static_cast<std::uint32_t>(tile[r * 16 + j]) -
                                             za * static_cast<std::uint32_t>(pg[g].column_sums[j]));
                v[r * 16 + j] = wrap(static_cast<std::uint32_t>(v[r * 16 + j]) +
                                     static_cast<std::uint32_t>(vg));
                facc[r * 16 + j] = facc[r * 16 + j] + static_cast<float>(vg) * pg[g].scales[j];
              }
          }
          store_rows(c, terms, v, facc, rows, m0, n0, nc);
        }
      }
    }
}

/// The per-call terms of a fused kernel's epilogue (detail/gemm_tile.hpp).
inline tile_epilogue make_tile_epilogue(const gemm_call& c, const prepared_activations& a) {
  const packed_weights& w = *c.w;
  const epilogue& e = *c.e;
  tile_epilogue t;
  t.n = w.n();
  t.za = c.za;
  t.kza = wrap(static_cast<std::uint32_t>(w.k()) * static_cast<std::uint32_t>(c.za));
  if (w.format() == weight_format::s8) {
    t.colsum = w.column_sums().data();
    if (w.has_zero_points()) {
      t.zw = w.zero_points().data();
      t.rowsum = a.rowsum;
    }
    t.sw = w.scales().data();
  } else {
    t.group_rowsum = a.rowsum;
    t.groups = w.groups();
  }
  t.y = c.y.data;
  t.ldy = c.y.ld;
  switch (e.type) {
    case epilogue::kind::int32:
      t.type = tile_epilogue::kind::int32;
      break;
    case epilogue::kind::f32:
      t.type = tile_epilogue::kind::f32;
      t.sx = c.x->scales.data();
      t.sx_per_row = c.x->scales.size() != 1;
      t.bias = e.bias.empty() ? nullptr : e.bias.data();
      t.lo = e.lo;
      t.hi = e.hi;
      break;
    case epilogue::kind::requantize:
      t.type = tile_epilogue::kind::requantize;
      t.mult = c.mult.data();
      t.bias_q = e.bias.empty() ? nullptr : c.bias_q.data();
      t.zy = e.out_zero_point;
      t.lo_q = c.lo_q;
      t.hi_q = c.hi_q;
      break;
  }
  return t;
}

template <class K, class = void>
struct is_fused : std::false_type {};
template <class K>
struct is_fused<K, std::void_t<decltype(K::fused)>> : std::bool_constant<K::fused> {};

/// Calls Kernel::s8_tile<R, P> for runtime 1 <= rows <= s8_mr, 1 <= np <= s8_panels.
template <class Kernel, int R = Kernel::s8_mr, int P = Kernel::s8_panels>
inline void call_fused_s8(int rows, int np, const packed_weights& w, std::int64_t p,
                          const std::uint8_t* a, std::int64_t lda, const tile_epilogue& t,
                          std::int64_t m0) noexcept {
  if constexpr (R >= 1 && P >= 1) {
    if (rows == R && np == P) {
      Kernel::template s8_tile<R, P>(a, lda, w.data() + p * w.panel_bytes(), w.panel_bytes(),
                                     (w.k() + 3) / 4, t, m0, p * 16);
    } else if (rows == R) {
      call_fused_s8<Kernel, R, P - 1>(rows, np, w, p, a, lda, t, m0);
    } else {
      call_fused_s8<Kernel, R - 1, P>(rows, np, w, p, a, lda, t, m0);
    }
  }
}

/// Calls Kernel::s4_tile<R, IntOut> for a runtime 1 <= rows <= Kernel::s4_mr.
template <class Kernel, int R = Kernel::s4_mr>
inline void call_fused_s4(int rows, const packed_weights& w, std::int64_t p, const std::uint8_t* a,
                          std::int64_t lda, const tile_epilogue& t, std::int64_t m0) noexcept {
  if constexpr (R >= 1) {
    if (rows == R) {
      const std::uint8_t* panel = w.data() + p * w.panel_bytes();
      if (t.type == tile_epilogue::kind::int32) {
        Kernel::template s4_tile<R, true>(a, lda, panel, w.groups(), w.group_size() / 8,
                                          w.panel_groups(p), t, m0, p * 16);
      } else {
        Kernel::template s4_tile<R, false>(a, lda, panel, w.groups(), w.group_size() / 8,
                                           w.panel_groups(p), t, m0, p * 16);
      }
      return;
    }
    call_fused_s4<Kernel, R - 1>(rows, w, p, a, lda, t, m0);
  }
}

/// The fused loop nest: the row blocking of run_panels; s8 tiles span up to
/// Kernel::s8_panels panels, the epilogue runs in the kernel.
template <class Kernel>
inline void run_fused_panels(const gemm_call& c, const prepared_activations& a,
                             const tile_epilogue& t, std::int64_t p_begin, std::int64_t p_end) {
  const packed_weights& w = *c.w;
  const bool s4 = w.format() == weight_format::s4;
  const int mr = s4 ? Kernel::s4_mr : Kernel::s8_mr;
  const std::int64_t M = c.x->m;
  // Decode (M <= 2) streams the weights once, from L3 or DRAM: one panel per tile
  // keeps that one sequential stream (the kernel's accumulator sets still give it 4
  // independent vpdpbusd chains); wider tiles only pay off when rows share a panel.
  const int np_max = s4 || M <= 2 ? 1 : Kernel::s8_panels;
  // AVX-512 cores have >= 1 MiB of L2 (Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4).
  const std::int64_t mc = row_block(M, a.ld, mr, 512 * 1024);
  for (std::int64_t mb = 0; mb < M; mb += mc)
    for (std::int64_t p = p_begin; p < p_end; p += np_max) {
      const int np = static_cast<int>(std::min<std::int64_t>(np_max, p_end - p));
      for (std::int64_t m0 = mb; m0 < std::min(M, mb + mc); m0 += mr) {
        const int rows = static_cast<int>(std::min<std::int64_t>(mr, M - m0));
        const std::uint8_t* arow = a.data + m0 * a.ld;
        if (s4) {
          call_fused_s4<Kernel>(rows, w, p, arow, a.ld, t, m0);
        } else {
          call_fused_s8<Kernel>(rows, np, w, p, arow, a.ld, t, m0);
        }
      }
    }
}

template <class Kernel>
inline void run_with(const gemm_call& c) {
  const packed_weights& w = *c.w;
  const std::int64_t kp = w.format() == weight_format::s8 ? (w.k() + 3) / 4 * 4 : w.k();
  prepared_activations a;
  // Sums: s8 with weight zero points, per row; s4 on a fused kernel, per group (the
  // unfused s4 kernels subtract the stored + 8 in bytes and need none).
  const std::int64_t sum_span = w.format() == weight_format::s4
                                    ? (is_fused<Kernel>::value ? w.group_size() : 0)
                                    : (w.has_zero_points() ? w.k() : 0);
  prepare_activations(*c.x, kp, sum_span, a);
  const int threads = useful_threads(c.threads, c.x->m, w.n(), w.k());
  if constexpr (is_fused<Kernel>::value) {
    const tile_epilogue t = make_tile_epilogue(c, a);
    parallel_for(w.panels(), threads,
                 [&](std::int64_t b, std::int64_t e) { run_fused_panels<Kernel>(c, a, t, b, e); });
  } else {
    parallel_for(w.panels(), threads,
                 [&](std::int64_t b, std::int64_t e) { run_panels<Kernel>(c, a, b, e); });
  }
}

/// The kernel family of an ISA level: the only place that branches on the ISA.
inline void run_gemm(const gemm_call& c) {
  if (c.x->m == 0) return;
#if LOWBIT_HAVE_X86_DISPATCH
  switch (c.w->level()) {
    case isa::amx_int8:  // AMX tiles: not yet implemented, runs the AVX-512 VNNI kernels
    case isa::avx512_vnni:
      return run_with<arch::avx512_vnni::gemm_kernels>(c);
    case isa::avx_vnni:
      return run_with<arch::avx_vnni::gemm_kernels>(c);
    case isa::avx2:
      return run_with<arch::avx2::gemm_kernels>(c);
    case isa::portable:
      break;
  }
#endif
  run_with<arch::portable::gemm_kernels>(c);
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_GEMM_DRIVER_HPP_
