// SPDX-License-Identifier: Apache-2.0
// detail/kernel_table.hpp: the contract between lowbit and one ISA's kernels.
//
// Every choice lowbit makes per instruction set is one value of type kernel_table:
// the GEMM microkernels, the weight-only (f32 x int) microkernels, the quantize and
// dequantize runs, the INT4 nibble (un)packers and the activation preparation. Each
// ISA defines its table in arch/<isa>/kernels.hpp (XNNPACK's gemm-config, Highway's
// HWY_EXPORT table); arch/tables.hpp lists them and holds the only switch on `isa`
// in the library (table_for). Everything above the table is ISA-agnostic baseline
// code that calls through its pointers:
//
//   best_isa()  --(once, when an object is built)-->  const kernel_table*
//   packed_weights, quantized_linear, sequential keep that pointer; free functions
//   (quantize, dequantize, pack_int4, gemm) resolve it once at the top of the call.
//
// A microkernel is called once per tile (thousands of multiply-adds for any K worth
// quantizing), so the indirect call is a few nanoseconds against microseconds of work;
// and since the kernels live in target regions, the baseline driver could not inline
// them anyway.
//
// The GEMM kernel contract
// ------------------------
// Weights are packed once in one format for every ISA (packed_weights.hpp): panels of
// nr = 16 output channels, K interleaved by kr = 4 (s8: 4 bytes of K per channel per
// 64-byte row) or kr = 8 (s4: two nibble rows per 64-byte row). Activations are
// prepared by the driver in the kernels' u8 domain (detail/gemm/driver.hpp). A kernel
// family is named for what it is, XNNPACK style: s8_7x48c4__avx512vnni is an s8-weight
// tile of 7 rows x 48 channels (3 panels) consuming K in steps of 4.
//
// Every tile has ONE contract: s8_tile[rows-1][panels-1] and s4_tile[rows-1][int_out]
// compute all of K (all groups) for rows x (16 * panels) outputs and finish them: the
// epilogue of detail/gemm/tile.hpp (zero-point corrections, scales, bias, clamp,
// requantize), writing the output. How a tile gets there is its own business: the
// AVX-512 tiles keep everything in registers; kernels that only produce int32
// products (AVX2, AVX-VNNI, portable) are adapted to the contract by
// detail/gemm/raw_tile.hpp, which adds the epilogue in plain C++. The driver has one loop
// nest and never knows which.
//
// Entries a kernel family does not have (rows above its mr, panels above its width)
// are null; the driver never calls them.
#ifndef LOWBIT_DETAIL_KERNEL_TABLE_HPP_
#define LOWBIT_DETAIL_KERNEL_TABLE_HPP_

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/gemm/tile.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/quant_params.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// Most rows of any GEMM or weight-only tile, most panels of an s8 tile.
inline constexpr int kMaxTileRows = 8;
inline constexpr int kMaxTilePanels = 3;

// ---- GEMM ----------------------------------------------------------------------
/// Fused s8: rows x (16 * panels) of a'[rows x 4 k4n] * packed panels, epilogue done.
using s8_tile_fn = void (*)(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                            std::int64_t panel_bytes, std::int64_t k4n, const tile_epilogue& e,
                            std::int64_t m0, std::int64_t n0) noexcept;
/// Fused s4: rows x 16, every group of the panel, epilogue done.
using s4_tile_fn = void (*)(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b,
                            std::int64_t groups, std::int64_t g8, const panel_group* pg,
                            const tile_epilogue& e, std::int64_t m0, std::int64_t n0) noexcept;
/// Wide route: a'[rows x 4 k4n] (u8, row stride lda) -> the tiles' form at `out`
/// (row stride wide_row_bytes(k4n)).
using widen_rows_fn = void (*)(const std::uint8_t* a, std::int64_t lda, std::int64_t rows,
                               std::int64_t k4n, std::uint8_t* out) noexcept;
/// Wide route: one packed s8 panel (k4n rows of 64 bytes) -> the tiles' form at `out`
/// (wide_panel_bytes(k4n)).
using widen_panel_fn = void (*)(const std::uint8_t* panel, std::int64_t k4n,
                                std::uint8_t* out) noexcept;
struct gemm_ukernels {
  const char* s8_name = nullptr;  ///< e.g. "s8_7x48c4__avx512vnni"
  const char* s4_name = nullptr;  ///< e.g. "s4_8x16c8__avx512vnni"
  int s8_mr = 0;                  ///< s8 tile rows
  int s8_panels = 1;              ///< s8 tile width in panels of 16 channels
  int s4_mr = 0;                  ///< s4 tile rows (width: one panel)
  /// s4 tiles want per-group activation sums (tile_epilogue::group_rowsum): tiles that
  /// feed the stored w + 8 to the multiplier remove the + 8 with them; tiles that
  /// subtract 8 in bytes need none (part of the format a tile consumes).
  bool s4_group_sums = false;
  /// Share of L2 a row block of prepared activations may take (detail::row_block).
  std::int64_t row_block_bytes = 256 * 1024;
  std::array<std::array<s8_tile_fn, kMaxTilePanels>, kMaxTileRows> s8_tile{};
  std::array<std::array<s4_tile_fn, 2>, kMaxTileRows> s4_tile{};  ///< [rows-1][int32 out]

  /// The optional wide s8 route, for compute-bound calls of tables whose fastest exact
  /// multiply wants wider operands than the packed bytes (AVX2: int16 pairs for
  /// vpmaddwd). When s8_wide_tile[0] is set and M >= wide_min_rows, the driver converts
  /// each row block of activations once (widen_rows) and each panel once per row block
  /// (widen_panel), into per-thread scratch, and runs s8_wide_tile on them (same
  /// signature as s8_tile, one panel, `a`/`b` pointing at the converted forms, lda in
  /// bytes). Small M keeps s8_tile, which streams the packed bytes as they are.
  /// Non-null when s8_tile has a faster route for calls whose activations are all
  /// below 128 (tile_epilogue::a_u7; the driver checks the prepared rows and then
  /// prefers s8_tile over the wide route), e.g. "s8_4x16c4__avx2_u7".
  const char* s8_u7_name = nullptr;
  const char* s8_wide_name = nullptr;  ///< e.g. "s8_6x16c2__avx2_i16"
  int s8_wide_mr = 0;
  std::int64_t wide_min_rows = 0;
  int wide_bytes =
      1;  ///< bytes per converted value: rows 4 k4n * wide_bytes, panels 64 k4n * wide_bytes
  widen_rows_fn widen_rows = nullptr;
  widen_panel_fn widen_panel = nullptr;
  std::array<s8_tile_fn, kMaxTileRows> s8_wide_tile{};
};

// ---- weight-only (f32 activations x packed int weights) ----------------------------
/// c[rows][16] = x[rows x k] * panel^T (s8, whole K).
using f32_s8_fn = void (*)(const float* x, std::int64_t ldx, const std::uint8_t* b, std::int64_t k,
                           float* c) noexcept;
/// c[rows][16] = x * panel^T over packed s4 rows [k8b, k8e) (one group).
using f32_s4_fn = void (*)(const float* x, std::int64_t ldx, const std::uint8_t* b,
                           std::int64_t k8b, std::int64_t k8e, float* c) noexcept;

struct f32_ukernels {
  const char* s8_name = nullptr;  ///< e.g. "f32s8_4x16__avx2"
  const char* s4_name = nullptr;
  int mr = 0;
  std::array<f32_s8_fn, kMaxTileRows> s8{};
  std::array<f32_s4_fn, kMaxTileRows> s4{};
};

// ---- quantize / dequantize / INT4 nibbles -------------------------------------------
/// Per-run constants of quantize: q = clamp(zp + rne(x * inv), lo, hi) (detail/quant/rounding.hpp).
struct qconst {
  float inv, zp, lo, hi;
};
/// How a quantize run stores its values.
enum class qstore : std::uint8_t { s8, u8, s4 };
/// n values from x into out (bytes, or nibbles from an even element); Vec: one
/// (inv, zp) pair per element from the arrays, else c's.
using quantize_fn = void (*)(const float* x, std::int64_t n, const float* inv, const float* zp,
                             const qconst& c, std::uint8_t* out) noexcept;
/// n values of q (bytes, or nibbles from an even element) -> out; Vec: per-element
/// (scale, zp) from the arrays, else s, z.
using dequantize_fn = void (*)(const std::uint8_t* q, std::int64_t n, const float* scale,
                               const float* zp, float s, float z, float* out) noexcept;
/// Index of the first NaN/Inf in x[0, n), or -1.
using find_nonfinite_fn = std::int64_t (*)(const float* x, std::int64_t n) noexcept;
/// Nibble (un)packing of a prefix; returns how many elements it did (the caller
/// finishes the rest with the scalar rule).
using nibble_fn = std::int64_t (*)(const std::uint8_t* in, std::int64_t n,
                                   std::uint8_t* out) noexcept;
/// Activation preparation: d[k] = s[k] ^ flip for k < n, returns sum_k d[k].
using prepare_row_fn = std::int32_t (*)(const std::uint8_t* s, std::uint8_t* d, std::int64_t n,
                                        std::uint8_t flip) noexcept;

struct quant_ukernels {
  std::array<std::array<std::array<quantize_fn, 2>, 2>, 3> quantize{};  ///< [qstore][Vec][NaN ok]
  std::array<std::array<dequantize_fn, 2>, 4> dequantize{};             ///< [dtype][Vec]
  find_nonfinite_fn find_nonfinite = nullptr;
  nibble_fn pack_nibbles = nullptr;
  std::array<nibble_fn, 2> unpack_nibbles{};  ///< [signed]
};

/// One ISA's kernels: everything lowbit runs that depends on the instruction set.
struct kernel_table {
  lowbit::isa level = lowbit::isa::portable;  ///< the isa this table serves
  gemm_ukernels gemm;
  f32_ukernels weight_only;
  quant_ukernels quant;
  prepare_row_fn prepare_row = nullptr;
};

// ---- helpers that fill a table from a kernel struct (used by arch/<isa>/kernels.hpp) -
template <class K, int R, int P>
constexpr s8_tile_fn s8_tile_at() noexcept {
  if constexpr (R <= K::s8_mr && P <= K::s8_panels) {
    return &K::template s8_tile<R, P>;
  } else {
    return nullptr;
  }
}
template <class K, int R, std::size_t... P>
constexpr std::array<s8_tile_fn, kMaxTilePanels> s8_tile_row(std::index_sequence<P...>) noexcept {
  return {{s8_tile_at<K, R, static_cast<int>(P) + 1>()...}};
}
template <class K, int R>
constexpr std::array<s4_tile_fn, 2> s4_tile_row() noexcept {
  if constexpr (R <= K::s4_mr) {
    return {{&K::template s4_tile<R, false>, &K::template s4_tile<R, true>}};
  } else {
    return {{nullptr, nullptr}};
  }
}
template <class K, std::size_t... I>
constexpr void fill_tiles(gemm_ukernels& g, std::index_sequence<I...>) noexcept {
  g.s8_tile = {
      {s8_tile_row<K, static_cast<int>(I) + 1>(std::make_index_sequence<kMaxTilePanels>{})...}};
  g.s4_tile = {{s4_tile_row<K, static_cast<int>(I) + 1>()...}};
}

/// A kernel struct K with the table's contract: K::s8_mr, K::s8_panels, K::s4_mr,
/// K::s4_group_sums, K::row_block_bytes, K::s8_tile<R, P>, K::s4_tile<R, IntOut>.
/// (detail/gemm/raw_tile.hpp builds such a struct around an int32-only kernel.)
template <class K>
constexpr gemm_ukernels gemm_ukernels_of(const char* s8_name, const char* s4_name) noexcept {
  static_assert(
      K::s8_mr <= kMaxTileRows && K::s4_mr <= kMaxTileRows && K::s8_panels <= kMaxTilePanels,
      "tile larger than kernel_table holds");
  gemm_ukernels g;
  g.s8_name = s8_name;
  g.s4_name = s4_name;
  g.s8_mr = K::s8_mr;
  g.s8_panels = K::s8_panels;
  g.s4_mr = K::s4_mr;
  g.s4_group_sums = K::s4_group_sums;
  g.row_block_bytes = K::row_block_bytes;
  fill_tiles<K>(g, std::make_index_sequence<kMaxTileRows>{});
  return g;
}

template <class K, int R>
constexpr s8_tile_fn wide_tile_at() noexcept {
  if constexpr (R <= K::wide_mr) {
    return &K::template wide_tile<R>;
  } else {
    return nullptr;
  }
}
template <class K, std::size_t... I>
constexpr std::array<s8_tile_fn, kMaxTileRows> wide_tiles(std::index_sequence<I...>) noexcept {
  return {{wide_tile_at<K, static_cast<int>(I) + 1>()...}};
}

/// Adds the wide s8 route of K (K::wide_mr, K::wide_min_rows, K::wide_bytes,
/// K::widen_rows, K::widen_panel, K::wide_tile<R>) to g.
template <class K>
constexpr void add_wide_route(gemm_ukernels& g, const char* name) noexcept {
  static_assert(K::wide_mr <= kMaxTileRows, "tile larger than kernel_table holds");
  g.s8_wide_name = name;
  g.s8_wide_mr = K::wide_mr;
  g.wide_min_rows = K::wide_min_rows;
  g.wide_bytes = K::wide_bytes;
  g.widen_rows = &K::widen_rows;
  g.widen_panel = &K::widen_panel;
  g.s8_wide_tile = wide_tiles<K>(std::make_index_sequence<kMaxTileRows>{});
}

template <class K, int R>
constexpr f32_s8_fn f32_s8_at() noexcept {
  if constexpr (R <= K::mr) {
    return &K::template s8<R>;
  } else {
    return nullptr;
  }
}
template <class K, int R>
constexpr f32_s4_fn f32_s4_at() noexcept {
  if constexpr (R <= K::mr) {
    return &K::template s4<R>;
  } else {
    return nullptr;
  }
}
template <class K, std::size_t... I>
constexpr void fill_f32(f32_ukernels& f, std::index_sequence<I...>) noexcept {
  f.s8 = {{f32_s8_at<K, static_cast<int>(I) + 1>()...}};
  f.s4 = {{f32_s4_at<K, static_cast<int>(I) + 1>()...}};
}

/// A weight-only kernel struct K: K::mr, K::s8<R>, K::s4<R>.
template <class K>
constexpr f32_ukernels f32_ukernels_of(const char* s8_name, const char* s4_name) noexcept {
  static_assert(K::mr <= kMaxTileRows, "tile larger than kernel_table holds");
  f32_ukernels f;
  f.s8_name = s8_name;
  f.s4_name = s4_name;
  f.mr = K::mr;
  fill_f32<K>(f, std::make_index_sequence<kMaxTileRows>{});
  return f;
}

/// Fills quantize[store][Vec][Nan] from a template Q<store, Vec, Nan>::run.
template <template <qstore, bool, bool> class Q>
constexpr void fill_quantize(quant_ukernels& q) noexcept {
  q.quantize[0] = {{{{&Q<qstore::s8, false, false>::run, &Q<qstore::s8, false, true>::run}},
                    {{&Q<qstore::s8, true, false>::run, &Q<qstore::s8, true, true>::run}}}};
  q.quantize[1] = {{{{&Q<qstore::u8, false, false>::run, &Q<qstore::u8, false, true>::run}},
                    {{&Q<qstore::u8, true, false>::run, &Q<qstore::u8, true, true>::run}}}};
  q.quantize[2] = {{{{&Q<qstore::s4, false, false>::run, &Q<qstore::s4, false, true>::run}},
                    {{&Q<qstore::s4, true, false>::run, &Q<qstore::s4, true, true>::run}}}};
}

/// Fills dequantize[dtype][Vec] from a template D<dtype, Vec>::run.
template <template <dtype, bool> class D>
constexpr void fill_dequantize(quant_ukernels& q) noexcept {
  q.dequantize[static_cast<int>(dtype::int8)] = {
      {&D<dtype::int8, false>::run, &D<dtype::int8, true>::run}};
  q.dequantize[static_cast<int>(dtype::uint8)] = {
      {&D<dtype::uint8, false>::run, &D<dtype::uint8, true>::run}};
  q.dequantize[static_cast<int>(dtype::int4)] = {
      {&D<dtype::int4, false>::run, &D<dtype::int4, true>::run}};
  q.dequantize[static_cast<int>(dtype::uint4)] = {
      {&D<dtype::uint4, false>::run, &D<dtype::uint4, true>::run}};
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_KERNEL_TABLE_HPP_
