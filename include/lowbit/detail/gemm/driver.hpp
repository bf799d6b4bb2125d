// SPDX-License-Identifier: Apache-2.0
// detail/gemm/driver.hpp: validation, activation preparation and the loop nest of
// lowbit::gemm (and of the layers, which prepare activations themselves), one for
// every ISA.
//
// The computation, as loops (BLIS names; the tile is the innermost block):
//
//   prepare:  a'[m][k] = x[m][k] as u8 (int8 input: x + 128), K padded with zeros to
//             a multiple of 4; rowsum[m] = sum_k a'[m][k] when s8 weights have zero
//             points; group_rowsum[m][g] (sum over group g) for s4 when the table's
//             tiles want them (gemm.s4_group_sums)
//   parallel over panels p (16 output channels each; static split = deterministic)
//     for row blocks mb of mc rows (row_block: mc x K bytes of a' stay in L2)
//     for each group of up to s8_panels panels (s4, decode: one) of this thread
//     for m0 in mb, mb + MR, ...                       (MR rows of the table's tile)
//       s8_tile[rows][panels] / s4_tile[rows][int32 out]: all of K (all groups), then
//       the epilogue, output written (detail/gemm/tile.hpp has the math)
//
// Tiles are plain functions in target regions (or detail/gemm/raw_tile.hpp's adapters of
// int32 kernels), reached through the kernel table of the weights' ISA
// (detail/kernel_table.hpp, arch/<isa>/kernels.hpp) once per tile: the driver itself is
// baseline code, so it never executes an instruction the CPU lacks, and it has no ISA
// switch. All integer corrections use wrap-around uint32 arithmetic, exact because the
// final sum fits int32 (max_k()). The per-call terms are resolved once into a
// tile_epilogue; tests compare every table with lowbit::reference.
#ifndef LOWBIT_DETAIL_GEMM_DRIVER_HPP_
#define LOWBIT_DETAIL_GEMM_DRIVER_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "lowbit/detail/core/aligned_buffer.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/core/threading.hpp"
#include "lowbit/detail/gemm/tile.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/detail/quant/rounding.hpp"
#include "lowbit/error.hpp"
#include "lowbit/gemm_types.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/packed_weights.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// The requantize epilogue's per-channel constants: they depend on the activation
/// scale, the weight scales, the bias and the output parameters, never on the data,
/// so a static layer computes them once (make_requant_terms) and every call reuses them.
struct requant_terms {
  std::vector<float> mult;           ///< (sx * sw[n]) / sy
  std::vector<std::int32_t> bias_q;  ///< round_half_even(bias[n] / (sx * sw[n])), or 0
  std::int32_t lo_q = 0, hi_q = 0;   ///< output clamp (ReLU raises lo_q to zy)
};

/// Validates the requantize-specific parts of a call and computes its terms.
inline requant_terms make_requant_terms(float sx, const packed_weights& w, const epilogue& e) {
  if (w.format() != weight_format::s8)
    fail("gemm: the requantize epilogue needs s8 weights (s4 per-group sums are float)");
  if (e.out_type != dtype::uint8 && e.out_type != dtype::int8)
    fail("gemm: requantize output must be uint8 or int8, got ", to_string(e.out_type));
  if (!(e.out_scale > 0.0f) || !std::isfinite(e.out_scale))
    fail("gemm: requantize output scale ", e.out_scale, " must be finite and > 0");
  requant_terms r;
  r.lo_q = dtype_min(e.out_type);
  r.hi_q = dtype_max(e.out_type);
  if (e.out_zero_point < r.lo_q || e.out_zero_point > r.hi_q)
    fail("gemm: requantize output zero point ", e.out_zero_point, " outside ",
         to_string(e.out_type), " range");
  if (e.fuse_relu) r.lo_q = e.out_zero_point;
  const auto n = static_cast<std::size_t>(w.n());
  r.mult.resize(n);
  r.bias_q.assign(n, 0);
  for (std::size_t j = 0; j < n; ++j) {
    const float sxw = sx * w.scales()[j];
    r.mult[j] = sxw / e.out_scale;
    if (!(r.mult[j] > 0.0f) || !std::isfinite(r.mult[j]))
      fail("gemm: requantize multiplier for channel ", j, " = ", r.mult[j],
           " is not finite and > 0");
    if (!e.bias.empty()) {
      const float b = round_half_even(e.bias[j] / sxw);
      if (!(std::abs(b) < 1073741824.0f))
        fail("gemm: bias[", j, "] = ", e.bias[j], " is out of int32 range once quantized");
      r.bias_q[j] = static_cast<std::int32_t>(b);
    }
  }
  return r;
}

/// A validated call: the operands, the kernel table that runs it (the weights'),
/// and the requantize terms (computed for this call, or a layer's precomputed ones).
struct gemm_call {
  const activations* x = nullptr;
  const packed_weights* w = nullptr;
  const epilogue* e = nullptr;
  output y{static_cast<float*>(nullptr), 0};
  int threads = 1;
  const kernel_table* kt = nullptr;   ///< w->table(): decided when w was packed
  std::int32_t za = 0;                ///< activation zero point in the kernels' u8 domain
  const requant_terms* rq = nullptr;  ///< requantize only
  requant_terms owned_rq;             ///< when the caller had none precomputed
};

/// Validates a call. `pre`: requantize terms computed earlier for exactly this
/// activation scale, weights and epilogue (a static layer's), or null to compute them.
inline void validate_gemm(gemm_call& c, const activations& x, const packed_weights& w,
                          const epilogue& e, const output& y, const gemm_context& ctx,
                          const requant_terms* pre = nullptr) {
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

  c.x = &x;
  c.w = &w;
  c.e = &e;
  c.y = y;
  c.threads = ctx.threads;
  c.kt = &w.table();
  c.za = x.type == dtype::int8 ? 128 : x.zero_point;
  c.rq = nullptr;
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
      if (pre != nullptr) {
        c.rq = pre;
      } else {
        c.owned_rq = make_requant_terms(x.scales[0], w, e);
        c.rq = &c.owned_rq;
      }
      break;
    }
  }
}

/// Row stride of the prepared activations for `kp` bytes per row: rounded up to a
/// multiple of 64 so rows start on cache lines. (Padding strides that are multiples
/// of 1024, so the rows of a tile fall in different L1 sets, was measured and
/// dropped: no change for the 7 x 3-panel AVX-512 tile, 10-25% slower for the AVX2
/// kernel at K = 1024 and 2048.)
constexpr std::int64_t activation_stride(std::int64_t kp) noexcept { return (kp + 63) / 64 * 64; }

/// Activations in the kernels' u8 domain, K padded with zeros to `kp` (and the row
/// stride to activation_stride(kp)), plus the sums the epilogue needs. The bytes live
/// in a buffer kept per calling thread (activation_scratch) and stay valid until that
/// thread's next gemm or layer call (gemm never calls itself; the workers only read
/// it while the caller waits).
struct prepared_activations {
  prepared_activations() = default;
  prepared_activations(const prepared_activations&) = delete;
  prepared_activations& operator=(const prepared_activations&) = delete;
  std::uint8_t* data = nullptr;
  std::int64_t m = 0;
  std::int64_t ld = 0;
  /// sum_k a'[m][k] over the row (s8 with weight zero points) or over each group
  /// (s4 when the tiles want them: [M x groups], for the w + 8 storage); null when not needed.
  std::int32_t* rowsum = nullptr;
  std::int64_t sum_span = 0;  ///< K span of one sum (0: no sums)
  std::int64_t spans = 0;     ///< sums per row: ceil(K / sum_span) of the weights' K
};

/// Per-thread scratch of the activation side: grows to the largest call this thread
/// made, up to kRetainedBytes, and is reused, so after a thread's first call of a
/// given size no call allocates. Calls above the cap get a buffer of their own, freed
/// on return (a GEMM that large costs far more than the allocation).
struct activation_scratch {
  static constexpr std::size_t kRetainedBytes = std::size_t{16} << 20;
  aligned_buffer bytes;
  std::vector<std::int32_t> sums;
  aligned_buffer oversized_bytes;
  std::vector<std::int32_t> oversized_sums;
  aligned_buffer wide, oversized_wide;

  static activation_scratch& of_this_thread() {
    thread_local activation_scratch s;
    return s;
  }
  /// n bytes from `kept` (grown to the largest request up to kRetainedBytes) or, above
  /// that, from `oversized`, which lives until the next request.
  static std::uint8_t* grow(aligned_buffer& kept, aligned_buffer& oversized, std::size_t n) {
    if (n > kRetainedBytes) {
      oversized = aligned_buffer(n, aligned_buffer::uninitialized);
      return oversized.data();
    }
    if (oversized.size() != 0) oversized = aligned_buffer();
    if (kept.size() < n) kept = aligned_buffer(n, aligned_buffer::uninitialized);
    return kept.data();
  }
  std::uint8_t* byte_buffer(std::size_t n) { return grow(bytes, oversized_bytes, n); }
  /// The wide route's per-slice conversions (run_prepared), beside the prepared rows.
  std::uint8_t* wide_buffer(std::size_t n) { return grow(wide, oversized_wide, n); }
  std::int32_t* sum_buffer(std::size_t n) {
    std::vector<std::int32_t>& v = n * 4 > kRetainedBytes ? oversized_sums : sums;
    if (&v == &sums && !oversized_sums.empty()) oversized_sums = std::vector<std::int32_t>();
    if (v.size() < n) v.resize(n);
    return v.data();
  }
};

/// K span of one activation sum for these weights on this table: K for s8 with zero
/// points, the group size for s4 when the table's tiles want group sums, else 0.
inline std::int64_t activation_sum_span(const packed_weights& w, const kernel_table& kt) noexcept {
  if (w.format() == weight_format::s4) return kt.gemm.s4_group_sums ? w.group_size() : 0;
  return w.has_zero_points() ? w.k() : 0;
}

/// Bytes per prepared row for these weights (K padded to the kernels' interleave).
inline std::int64_t prepared_k(const packed_weights& w) noexcept {
  return w.format() == weight_format::s8 ? (w.k() + 3) / 4 * 4 : w.k();
}

/// Reserves the prepared buffer for m rows (contents unset).
inline void reserve_activations(const packed_weights& w, const kernel_table& kt, std::int64_t m,
                                prepared_activations& p) {
  activation_scratch& s = activation_scratch::of_this_thread();
  p.m = m;
  p.ld = activation_stride(prepared_k(w));
  p.data = s.byte_buffer(static_cast<std::size_t>(m * p.ld));
  p.sum_span = activation_sum_span(w, kt);
  p.rowsum = nullptr;
  p.spans = p.sum_span > 0 ? (w.k() + p.sum_span - 1) / p.sum_span : 0;
  if (p.spans > 0) p.rowsum = s.sum_buffer(static_cast<std::size_t>(m * p.spans));
}

/// Row m of a prepared buffer after its first `k` bytes were written in the u8
/// domain: zero padding up to the row stride, then the row's sums over the weights' K
/// (padding included: zero bytes add nothing).
inline void finish_prepared_row(const kernel_table& kt, prepared_activations& p, std::int64_t m,
                                std::int64_t k) noexcept {
  std::uint8_t* d = p.data + m * p.ld;
  std::memset(d + k, 0, static_cast<std::size_t>(p.ld - k));
  for (std::int64_t g = 0; g < p.spans; ++g)  // in place (flip 0): sums only
    p.rowsum[m * p.spans + g] =
        kt.prepare_row(d + g * p.sum_span, d + g * p.sum_span, p.sum_span, 0);
}

/// Integer activations of a gemm() call -> the prepared buffer (copy, flip int8 to u8,
/// sums): one pass over x per row.
inline void prepare_activations(const gemm_call& c, prepared_activations& p) {
  const activations& x = *c.x;
  const kernel_table& kt = *c.kt;
  reserve_activations(*c.w, kt, x.m, p);
  const auto* src = static_cast<const std::uint8_t*>(x.data);
  const std::uint8_t flip = x.type == dtype::int8 ? 0x80 : 0x00;
  const std::int64_t spans = p.spans;
  for (std::int64_t m = 0; m < x.m; ++m) {
    std::uint8_t* d = p.data + m * p.ld;
    if (spans == 0) {
      kt.prepare_row(src + m * x.ld, d, x.k, flip);
    } else {
      for (std::int64_t g = 0; g < spans; ++g) {
        const std::int64_t k0 = g * p.sum_span, len = std::min(p.sum_span, x.k - k0);
        p.rowsum[m * spans + g] = kt.prepare_row(src + m * x.ld + k0, d + k0, len, flip);
      }
    }
    std::memset(d + x.k, 0, static_cast<std::size_t>(p.ld - x.k));
  }
}

/// Rows per block: the loop nest keeps a block of prepared activations (rows x ld
/// bytes) in L2 while every panel of the thread streams past it; without blocks, all
/// of A would be read once per panel, and each block costs one pass over the weights.
/// `budget` is the table's share of the L2 (gemm_ukernels::row_block_bytes: 256 KiB
/// for the int32-kernel tables, 512 KiB for AVX-512). Blocks are balanced and a multiple of the
/// tile height: at a budget of 256 KiB, M = 128 and K = 4096 run blocks of 49, 49, 30 rows (7-row
/// tiles), not 63, 63, 2 (a third pass over all the weights for 2 rows).
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

/// The per-call terms of the tiles' epilogue (detail/gemm/tile.hpp).
inline tile_epilogue make_tile_epilogue(const gemm_call& c, const prepared_activations& a) {
  const packed_weights& w = *c.w;
  const epilogue& e = *c.e;
  tile_epilogue t;
  t.n = w.n();
  t.za = c.za;
  t.kza = wrap(static_cast<std::uint32_t>(w.k()) * static_cast<std::uint32_t>(c.za));
  if (w.format() == weight_format::s8) {
    t.colsum = w.column_sums().data();
    t.min_offsets = w.min_offsets().data();
    t.min_entries = w.min_entries().data();
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
      t.mult = c.rq->mult.data();
      t.bias_q = e.bias.empty() ? nullptr : c.rq->bias_q.data();
      t.zy = e.out_zero_point;
      t.lo_q = c.rq->lo_q;
      t.hi_q = c.rq->hi_q;
      break;
  }
  return t;
}

/// The loop nest: panels [p_begin, p_end) of one thread, row blocks whose prepared
/// activations stay in L2 (row_block, the table's budget), s8 tiles up to
/// gemm.s8_panels panels wide; each tile finishes its outputs.
inline void run_panels(const gemm_call& c, const prepared_activations& a, const tile_epilogue& t,
                       std::int64_t p_begin, std::int64_t p_end) {
  const gemm_ukernels& uk = c.kt->gemm;
  const packed_weights& w = *c.w;
  const bool s4 = w.format() == weight_format::s4;
  const int mr = s4 ? uk.s4_mr : uk.s8_mr;
  const std::int64_t M = a.m;
  const std::int64_t panel_bytes = w.panel_bytes(), k4n = (w.k() + 3) / 4;
  const std::int64_t groups = w.groups(), g8 = w.group_size() / 8;
  const int int_out = t.type == tile_epilogue::kind::int32 ? 1 : 0;
  // Decode (M <= 2) streams the weights once, from L3 or DRAM: one panel per tile
  // keeps that one sequential stream (the kernel's accumulator sets still give it 4
  // independent vpdpbusd chains); wider tiles only pay off when rows share a panel.
  const int np_max = s4 || M <= 2 ? 1 : uk.s8_panels;
  const std::int64_t mc = row_block(M, a.ld, mr, uk.row_block_bytes);
  for (std::int64_t mb = 0; mb < M; mb += mc)
    for (std::int64_t p = p_begin; p < p_end; p += np_max) {
      const int np = static_cast<int>(std::min<std::int64_t>(np_max, p_end - p));
      const std::uint8_t* panel = w.data() + p * panel_bytes;
      for (std::int64_t m0 = mb; m0 < std::min(M, mb + mc); m0 += mr) {
        const int rows = static_cast<int>(std::min<std::int64_t>(mr, M - m0));
        const std::uint8_t* arow = a.data + m0 * a.ld;
        if (s4) {
          uk.s4_tile[rows - 1][int_out](arow, a.ld, panel, groups, g8, w.panel_groups(p), t, m0,
                                        p * 16);
        } else {
          uk.s8_tile[rows - 1][np - 1](arow, a.ld, panel, panel_bytes, k4n, t, m0, p * 16);
        }
      }
    }
}

/// The wide s8 route's sizes (kernel_table.hpp, gemm_ukernels::s8_wide_tile): one
/// converted row, one converted panel, rows per row block, scratch per thread slice.
struct wide_plan {
  std::int64_t row_bytes = 0, panel_bytes = 0, rows = 0, slice_bytes = 0;
};
inline bool takes_wide_route(const gemm_ukernels& uk, const packed_weights& w,
                             std::int64_t m) noexcept {
  return w.format() == weight_format::s8 && uk.s8_wide_tile[0] != nullptr && m >= uk.wide_min_rows;
}
inline wide_plan plan_wide(const gemm_ukernels& uk, const packed_weights& w,
                           std::int64_t m) noexcept {
  const std::int64_t k4n = (w.k() + 3) / 4;
  wide_plan p;
  p.row_bytes = 4 * k4n * uk.wide_bytes;
  p.panel_bytes = 64 * k4n * uk.wide_bytes;
  p.rows = row_block(m, p.row_bytes, uk.s8_wide_mr, uk.row_block_bytes);
  p.slice_bytes = (p.rows * p.row_bytes + 63) / 64 * 64 + p.panel_bytes;
  return p;
}

/// The wide route of panels [p_begin, p_end): per row block, the rows converted once
/// into `scratch`, then per panel the panel converted once beside them and every tile
/// of the block run on the two.
inline void run_panels_wide(const gemm_call& c, const prepared_activations& a,
                            const tile_epilogue& t, const wide_plan& plan, std::int64_t p_begin,
                            std::int64_t p_end, std::uint8_t* scratch) noexcept {
  const gemm_ukernels& uk = c.kt->gemm;
  const packed_weights& w = *c.w;
  const std::int64_t M = a.m, k4n = (w.k() + 3) / 4, mr = uk.s8_wide_mr;
  std::uint8_t* rows = scratch;
  std::uint8_t* panel = scratch + (plan.rows * plan.row_bytes + 63) / 64 * 64;
  for (std::int64_t mb = 0; mb < M; mb += plan.rows) {
    const std::int64_t mc = std::min(plan.rows, M - mb);
    uk.widen_rows(a.data + mb * a.ld, a.ld, mc, k4n, rows);
    for (std::int64_t p = p_begin; p < p_end; ++p) {
      uk.widen_panel(w.data() + p * w.panel_bytes(), k4n, panel);
      for (std::int64_t m0 = mb; m0 < mb + mc; m0 += mr) {
        const int r = static_cast<int>(std::min(mr, mb + mc - m0));
        uk.s8_wide_tile[r - 1](rows + (m0 - mb) * plan.row_bytes, plan.row_bytes, panel,
                               plan.panel_bytes, k4n, t, m0, p * 16);
      }
    }
  }
}

/// Whether every prepared a' (rows x ld bytes, the K padding zeros included) is below
/// 128. One OR over the bytes: O(M K), next to the O(M N K) of the call.
inline bool all_below_128(const prepared_activations& a) noexcept {
  const std::int64_t words = a.ld / 8;  // ld is a multiple of 4; a tail of 4 bytes remains
  std::uint64_t any = 0;
  for (std::int64_t m = 0; m < a.m; ++m) {
    const std::uint8_t* row = a.data + m * a.ld;
    for (std::int64_t i = 0; i < words; ++i) {
      std::uint64_t v;
      std::memcpy(&v, row + 8 * i, 8);
      any |= v;
    }
    for (std::int64_t i = words * 8; i < a.ld; ++i) any |= row[i];
  }
  return (any & 0x8080808080808080u) == 0;
}

/// Runs a validated call on activations already prepared for it.
inline void run_prepared(const gemm_call& c, const prepared_activations& a) {
  if (a.m == 0) return;
  const packed_weights& w = *c.w;
  const int threads = useful_threads(c.threads, a.m, w.n(), w.k());
  tile_epilogue t = make_tile_epilogue(c, a);
  const gemm_ukernels& uk = c.kt->gemm;
  t.a_u7 = uk.s8_u7_name != nullptr && w.format() == weight_format::s8 && all_below_128(a);
  if (!t.a_u7 && takes_wide_route(uk, w, a.m)) {
    // One scratch slice per thread, allocated here by the calling thread (workers
    // never allocate); thread i takes panels [P i / T, P (i + 1) / T): parallel_for's
    // own split, so the results are the same for any thread count.
    const wide_plan plan = plan_wide(c.kt->gemm, w, a.m);
    std::uint8_t* scratch = activation_scratch::of_this_thread().wide_buffer(
        static_cast<std::size_t>(plan.slice_bytes * threads));
    const std::int64_t P = w.panels(), T = threads;
    parallel_for(T, threads, [&](std::int64_t b, std::int64_t e) {
      for (std::int64_t i = b; i < e; ++i)
        run_panels_wide(c, a, t, plan, P * i / T, P * (i + 1) / T, scratch + i * plan.slice_bytes);
    });
    return;
  }
  parallel_for(w.panels(), threads,
               [&](std::int64_t b, std::int64_t e) { run_panels(c, a, t, b, e); });
}

/// Runs a validated gemm() call: prepare the activations, then the loop nest of the
/// weights' kernel table.
inline void run_gemm(const gemm_call& c) {
  if (c.x->m == 0) return;
  prepared_activations a;
  prepare_activations(c, a);
  run_prepared(c, a);
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_GEMM_DRIVER_HPP_
