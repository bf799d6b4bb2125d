// SPDX-License-Identifier: Apache-2.0
// packed_weights.hpp: weights W [N x K] quantized once and laid out for the GEMM kernels.
//
// Vocabulary: y[M x N] = x[M x K] * W^T, W stored [N x K] row-major exactly like
// torch.nn.Linear.weight. N = output channels, K = depth. Weights are static: they
// are packed once, here, and reused by every call and every thread.
//
// Weight formats
// --------------
//   s8  int8, symmetric (zero point 0) or affine (one zero point per tensor or per
//       output channel); one scale per tensor or per output channel.
//   s4  int4 in [-8, 7], symmetric, one scale per group of `group_size` consecutive
//       K elements of a row (llama.cpp / GPTQ / ONNX MatMulNBits); group_size is a
//       multiple of 32 and divides K. Unpacked to bytes in registers, never in memory.
//
// The packed layout (the kernels dictate it; gemmlowp's "kernel format")
// ----------------------------------------------------------------------
// Columns are grouped in panels of 16 output channels. vpdpbusd multiplies 4
// consecutive u8 activations by 4 consecutive s8 weights and adds the 4 products to
// one int32 lane, so a panel is stored as rows of 64 bytes, each row = 4 K values of
// each of the 16 channels:
//
//   s8 panel p (channels n = 16p .. 16p+15), K4 = ceil(K / 4) rows:
//        row k4:  | n+0: k..k+3 | n+1: k..k+3 | ... | n+15: k..k+3 |   k = 4*k4
//                   4 bytes       4 bytes             4 bytes      = 64 bytes
//     byte[k4][c][j] = W[16p + c][4*k4 + j], zero past K or N.
//     One row is one zmm (the second operand of vpdpbusd for 16 int32 lanes), two
//     ymm for the AVX2/AVX-VNNI kernels, and one row of an AMX B tile (16 rows of 64
//     bytes = 16 consecutive rows here).
//
//   s4 panel, K8 = K / 8 rows of 64 bytes; every byte holds two K values, each stored
//   as u = w + 8 in [0, 15] (offset binary, ggml's q4_0 convention):
//     byte[k8][c][j] = (W[16p+c][8*k8 + j] + 8)  |  (W[16p+c][8*k8 + 4 + j] + 8) << 4
//     so the low nibbles of a row are row 2*k8 and the high nibbles row 2*k8+1: a
//     kernel gets two rows of u from one 64-byte load with an AND (and a shift).
//     The fused AVX-512 kernel feeds u to vpdpbusd as it is (0..15 is a valid s8) and
//     subtracts 8 * sum_k a'[m][k] once per group; the other kernels subtract 8 in
//     bytes, the f32 weight-only kernels XOR 0x88 before their shifts.
//
// Panels follow each other: panel p starts at p * K4 * 64 (s8) or p * K8 * 64 (s4).
//
// s4 keeps its per-group epilogue terms panel by panel (panel_groups(p)): for each
// group, the 16 channels' column sums then their 16 scales, 128 bytes, so a kernel
// folds a group with two aligned vector loads instead of a 16-way gather.
//
// What the epilogue needs is computed here too: per-channel scales (expanded to one
// per channel, or per channel x group), zero points, and the column sums
// colsum[n] = sum_k W[n][k] (per group for s4, kept in panel_groups()). The sums carry the
// zero-point algebra (gemmlowp's offsets): with activations seen by the kernel as u8 values a' and
// activation zero point za' in that domain (u8: a' = a, za' = za; s8: a' = a + 128,
// za' = 128),
//     sum_k (a - za)(w - zw) = P - za' * colsum[n] - zw[n] * rowsum[m] + K * za' * zw[n]
// where P = sum_k a' * w is what the kernels compute.
#ifndef LOWBIT_PACKED_WEIGHTS_HPP_
#define LOWBIT_PACKED_WEIGHTS_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lowbit/arch/tables.hpp"
#include "lowbit/detail/core/aligned_buffer.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/error.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/quantized_tensor.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

/// Weight storage formats of the GEMM (see the file comment).
enum class weight_format : std::uint8_t { s8, s4 };
constexpr const char* to_string(weight_format f) noexcept {
  return f == weight_format::s8 ? "s8" : "s4";
}

/// Largest K for which every int32 the GEMM forms (the raw products P and the final
/// sum_k (a - za)(w - zw)) cannot overflow: floor((2^31 - 1) / max |product|).
///   s8, symmetric weights: |a' * w| <= 255 * 128 = 32640          -> K <= 65793
///   s8, weight zero points: |(a - za)(w - zw)| <= 255 * 255 = 65025 -> K <= 33025
///   s4: |a' * w| <= 255 * 8 = 2040                                -> K <= 1052688
/// gemm() rejects larger K with a lowbit::error. (Intermediate raw sums may wrap, e.g.
/// the AVX-512 s4 kernel's sum over a group of a' * (w + 8); every correction is done
/// in wrapping 32-bit arithmetic, so the final value, which fits, is exact.)
constexpr std::int64_t max_k(weight_format f, bool weight_zero_points = false) noexcept {
  const std::int64_t limit = 2147483647;
  if (f == weight_format::s4) return limit / (255 * 8);
  return weight_zero_points ? limit / (255 * 255) : limit / (255 * 128);
}

class packed_weights {
 public:
  static constexpr std::int64_t panel_width = 16;  ///< output channels per panel
  static constexpr std::int64_t row_bytes = 64;    ///< bytes per packed panel row

  /// s4: one group's epilogue terms for the 16 channels of a panel (zero past N).
  using panel_group = detail::panel_group;

  packed_weights() = default;

  /// int8 weights W[n x k] with row stride `ldw` (elements); `scales` has 1 or n
  /// entries; `zero_points` is empty (symmetric) or has 1 or n entries in [-128, 127].
  /// `level` is the ISA whose kernels this object will run (default: best now).
  static packed_weights pack_s8(const std::int8_t* w, std::int64_t n, std::int64_t k,
                                std::int64_t ldw, span<const float> scales,
                                span<const std::int32_t> zero_points = {}, isa level = best_isa()) {
    check_shape(w, n, k, ldw, "pack_s8");
    check_scales(scales, n, "pack_s8", "1 or n");
    if (!zero_points.empty() && zero_points.size() != 1 &&
        static_cast<std::int64_t>(zero_points.size()) != n)
      detail::fail("packed_weights::pack_s8: ", zero_points.size(), " zero points for n = ", n,
                   " (need 0, 1 or n)");
    for (std::size_t i = 0; i < zero_points.size(); ++i)
      if (zero_points[i] < -128 || zero_points[i] > 127)
        detail::fail("packed_weights::pack_s8: zero_point[", i, "] = ", zero_points[i],
                     " outside [-128, 127]");
    bool any_zp = false;
    for (auto z : zero_points) any_zp = any_zp || z != 0;
    if (k > max_k(weight_format::s8, any_zp))
      detail::fail("packed_weights::pack_s8: K = ", k,
                   " exceeds max_k = ", max_k(weight_format::s8, any_zp),
                   " (int32 accumulation would overflow)");
    packed_weights p;
    p.format_ = weight_format::s8;
    p.level_ = level;
    p.table_ = &detail::table_for(level);
    p.n_ = n;
    p.k_ = k;
    p.group_size_ = k;
    p.scales_ = expand(scales, static_cast<std::size_t>(n));
    if (any_zp) {
      p.zero_points_.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i)
        p.zero_points_[static_cast<std::size_t>(i)] =
            zero_points.size() == 1 ? zero_points[0] : zero_points[static_cast<std::size_t>(i)];
    }
    const std::int64_t k4 = (k + 3) / 4;
    p.data_ = detail::aligned_buffer(static_cast<std::size_t>(p.panels() * k4 * row_bytes));
    p.colsum_.assign(static_cast<std::size_t>(n), 0);
    for (std::int64_t c = 0; c < n; ++c) {
      std::uint8_t* panel = p.data_.data() + (c / panel_width) * k4 * row_bytes;
      const std::int64_t lane = c % panel_width;
      std::int32_t sum = 0;
      for (std::int64_t kk = 0; kk < k; ++kk) {
        const std::int8_t v = w[c * ldw + kk];
        panel[(kk / 4) * row_bytes + lane * 4 + kk % 4] = static_cast<std::uint8_t>(v);
        sum += v;
      }
      p.colsum_[static_cast<std::size_t>(c)] = sum;
    }
    // Where -128 is, panel by panel, in K order then lane order.
    p.min_offsets_.assign(static_cast<std::size_t>(p.panels() + 1), 0);
    for (std::int64_t pn = 0; pn < p.panels(); ++pn) {
      const std::int64_t lanes = std::min(panel_width, n - pn * panel_width);
      for (std::int64_t kk = 0; kk < k; ++kk)
        for (std::int64_t lane = 0; lane < lanes; ++lane)
          if (w[(pn * panel_width + lane) * ldw + kk] == -128)
            p.min_entries_.push_back(static_cast<std::uint32_t>(kk * panel_width + lane));
      p.min_offsets_[static_cast<std::size_t>(pn + 1)] =
          static_cast<std::uint32_t>(p.min_entries_.size());
    }
    return p;
  }

  /// int4 weights, per-group symmetric. `packed` is INT4 storage of the logical
  /// [n x k] tensor (lowbit's interchange layout: element 2i in the low nibble, rows
  /// contiguous, as quantize() writes it); `scales` is [n x k / group_size] row-major.
  static packed_weights pack_s4(const std::uint8_t* packed, std::int64_t n, std::int64_t k,
                                std::int64_t group_size, span<const float> scales,
                                isa level = best_isa()) {
    check_shape(packed, n, k, k, "pack_s4");
    if (group_size <= 0 || group_size % 32 != 0)
      detail::fail("packed_weights::pack_s4: group_size must be a positive multiple of 32, got ",
                   group_size);
    if (k % group_size != 0)
      detail::fail("packed_weights::pack_s4: group_size ", group_size, " does not divide K = ", k);
    if (k > max_k(weight_format::s4))
      detail::fail("packed_weights::pack_s4: K = ", k,
                   " exceeds max_k = ", max_k(weight_format::s4));
    const std::int64_t groups = k / group_size;
    if (static_cast<std::int64_t>(scales.size()) != n * groups)
      detail::fail("packed_weights::pack_s4: ", scales.size(), " scales for [", n, " x ", groups,
                   "] groups");
    check_scales(scales, n * groups, "pack_s4", "n * k / group_size");
    packed_weights p;
    p.format_ = weight_format::s4;
    p.level_ = level;
    p.table_ = &detail::table_for(level);
    p.n_ = n;
    p.k_ = k;
    p.group_size_ = group_size;
    p.scales_.assign(scales.begin(), scales.end());
    const std::int64_t k8 = k / 8;
    p.data_ = detail::aligned_buffer(static_cast<std::size_t>(p.panels() * k8 * row_bytes));
    std::memset(p.data_.data(), 0x88, p.data_.size());  // channels past n: w = 0
    p.panel_groups_.assign(static_cast<std::size_t>(p.panels() * groups), panel_group{});
    for (std::int64_t c = 0; c < n; ++c) {
      std::uint8_t* panel = p.data_.data() + (c / panel_width) * k8 * row_bytes;
      panel_group* terms = p.panel_groups_.data() + (c / panel_width) * groups;
      const std::int64_t lane = c % panel_width;
      for (std::int64_t g = 0; g < groups; ++g)
        terms[g].scales[lane] = p.scales_[static_cast<std::size_t>(c * groups + g)];
      for (std::int64_t kk = 0; kk < k; ++kk) {
        const std::int64_t flat = c * k + kk;
        int v = (packed[flat / 2] >> ((flat % 2) * 4)) & 0x0F;
        const auto nib = static_cast<std::uint8_t>(v ^ 8);  // w + 8 (see the file comment)
        if (v >= 8) v -= 16;
        terms[kk / group_size].column_sums[lane] += v;
        std::uint8_t& b = panel[(kk / 8) * row_bytes + lane * 4 + kk % 4];
        b = static_cast<std::uint8_t>((kk % 8) < 4 ? (b & 0xF0) | nib : (b & 0x0F) | (nib << 4));
      }
    }
    return p;
  }

  /// From a quantized tensor [n x k]: int8 (per-tensor or per-channel along axis 0,
  /// symmetric or affine) or int4 (per-group, symmetric, zero points 0).
  static packed_weights pack(const quantized_tensor& q, isa level = best_isa()) {
    const quant_params& pr = q.params;
    if (q.shape.size() != 2)
      detail::fail("packed_weights::pack: weights must be 2-D [n x k], got rank ", q.shape.size());
    pr.validate(q.shape);
    const std::int64_t n = q.shape[0], k = q.shape[1];
    if (pr.type == dtype::int8) {
      if (pr.granularity.is_per_group() || (pr.granularity.is_per_channel() &&
                                            pr.granularity.axis != 0 && pr.granularity.axis != -2))
        detail::fail(
            "packed_weights::pack: int8 weights must be per_tensor or per_channel{0}, got ",
            to_string(pr.granularity.type), " axis ", pr.granularity.axis);
      return pack_s8(reinterpret_cast<const std::int8_t*>(q.data.data()), n, k, k,
                     span<const float>(pr.scales), span<const std::int32_t>(pr.zero_points), level);
    }
    if (pr.type == dtype::int4) {
      if (!pr.granularity.is_per_group())
        detail::fail("packed_weights::pack: int4 weights must be per_group, got ",
                     to_string(pr.granularity.type));
      for (std::size_t i = 0; i < pr.zero_points.size(); ++i)
        if (pr.zero_points[i] != 0)
          detail::fail("packed_weights::pack: int4 weights must be symmetric, zero_point[", i,
                       "] = ", pr.zero_points[i]);
      return pack_s4(q.data.data(), n, k, pr.granularity.group_size, span<const float>(pr.scales),
                     level);
    }
    detail::fail("packed_weights::pack: weights must be int8 or int4, got ", to_string(pr.type));
  }

  std::int64_t n() const noexcept { return n_; }
  std::int64_t k() const noexcept { return k_; }
  weight_format format() const noexcept { return format_; }
  /// The ISA whose kernels run this object (chosen when it was packed).
  lowbit::isa level() const noexcept { return level_; }
  /// The kernel table of level(), resolved when this object was packed: every GEMM
  /// and weight-only call on these weights, and the activation quantization of the
  /// layers that own them, runs these kernels (detail/kernel_table.hpp).
  const detail::kernel_table& table() const noexcept { return *table_; }
  /// K for s8 (one group), the group size for s4.
  std::int64_t group_size() const noexcept { return group_size_; }
  std::int64_t groups() const noexcept { return k_ / group_size_; }
  std::int64_t panels() const noexcept { return (n_ + panel_width - 1) / panel_width; }
  /// Bytes of one packed panel.
  std::int64_t panel_bytes() const noexcept {
    return (format_ == weight_format::s8 ? (k_ + 3) / 4 : k_ / 8) * row_bytes;
  }
  bool has_zero_points() const noexcept { return !zero_points_.empty(); }

  const std::uint8_t* data() const noexcept { return data_.data(); }
  /// Per channel (s8) or per channel x group (s4, row-major [n x groups]).
  const std::vector<float>& scales() const noexcept { return scales_; }
  const std::vector<std::int32_t>& zero_points() const noexcept { return zero_points_; }
  /// s8: colsum[n] = sum_k W[n][k]. Empty for s4, whose sums are in panel_groups().
  const std::vector<std::int32_t>& column_sums() const noexcept { return colsum_; }
  /// s8: where the weight -128 occurs, found once at pack time. The entries of panel p
  /// are min_entries()[min_offsets()[p] .. min_offsets()[p + 1]), each k * 16 + lane,
  /// in K order. AVX2's vpmaddubsw sign trick cannot negate -128 and corrects these
  /// products afterwards (or, when a panel holds many, runs its int16 kernel instead:
  /// arch/avx2/gemm_tiles.hpp). Symmetric weights of the PyTorch convention
  /// (amax / 127.5) hold about one per channel whose extreme is negative; the narrow
  /// convention none. Empty for s4.
  const std::vector<std::uint32_t>& min_offsets() const noexcept { return min_offsets_; }
  const std::vector<std::uint32_t>& min_entries() const noexcept { return min_entries_; }
  /// s4: the groups() epilogue blocks of panel p: column sums per group and the
  /// scales() regrouped (see the file comment). Null for s8.
  const panel_group* panel_groups(std::int64_t p) const noexcept {
    return panel_groups_.empty() ? nullptr : panel_groups_.data() + p * groups();
  }

  /// Weight value W[n][k] as stored (int8, or int4 in [-8, 7]): the inverse of packing.
  std::int32_t value(std::int64_t n, std::int64_t k) const noexcept {
    const std::uint8_t* panel = data_.data() + (n / panel_width) * panel_bytes();
    const std::int64_t lane = n % panel_width;
    if (format_ == weight_format::s8)
      return static_cast<std::int8_t>(panel[(k / 4) * row_bytes + lane * 4 + k % 4]);
    const std::uint8_t b = panel[(k / 8) * row_bytes + lane * 4 + k % 4];
    return ((k % 8) < 4 ? (b & 0x0F) : (b >> 4)) - 8;  // stored w + 8
  }

  /// The quantized weights in lowbit's interchange form (what pack() accepts back):
  /// int8 [n x k] per channel (or per tensor when all scales and zero points agree),
  /// or int4 per group, packed two per byte. Used to save layers without keeping a
  /// second copy of the weights.
  quantized_tensor unpack() const {
    quantized_tensor q;
    q.shape = {n_, k_};
    quant_params& p = q.params;
    if (format_ == weight_format::s8) {
      p.type = dtype::int8;
      p.scheme = zero_points_.empty() ? scheme::symmetric : scheme::affine;
      p.granularity = per_channel{0};
      p.scales = scales_;
      p.zero_points =
          zero_points_.empty() ? std::vector<std::int32_t>(scales_.size(), 0) : zero_points_;
      q.data.resize(static_cast<std::size_t>(n_ * k_));
      for (std::int64_t r = 0; r < n_; ++r)
        for (std::int64_t c = 0; c < k_; ++c)
          q.data[static_cast<std::size_t>(r * k_ + c)] =
              static_cast<std::uint8_t>(value(r, c) & 0xFF);
    } else {
      p.type = dtype::int4;
      p.scheme = scheme::symmetric;
      p.granularity = per_group{group_size_};
      p.scales = scales_;
      p.zero_points.assign(scales_.size(), 0);
      q.data.assign(static_cast<std::size_t>((n_ * k_ + 1) / 2), 0);
      for (std::int64_t r = 0; r < n_; ++r)
        for (std::int64_t c = 0; c < k_; ++c) {
          const std::int64_t i = r * k_ + c;
          q.data[static_cast<std::size_t>(i / 2)] |=
              static_cast<std::uint8_t>((value(r, c) & 0x0F) << ((i % 2) * 4));
        }
    }
    p.quant_min = dtype_min(p.type);
    p.quant_max = dtype_max(p.type);
    return q;
  }

  /// Everything this object owns: packed data plus epilogue vectors.
  std::size_t memory_bytes() const noexcept {
    return data_.size() + scales_.size() * sizeof(float) +
           (zero_points_.size() + colsum_.size()) * sizeof(std::int32_t) +
           panel_groups_.size() * sizeof(panel_group) +
           (min_offsets_.size() + min_entries_.size()) * sizeof(std::uint32_t);
  }

 private:
  template <class T>
  static void check_shape(const T* w, std::int64_t n, std::int64_t k, std::int64_t ldw,
                          const char* who) {
    if (n <= 0 || k <= 0)
      detail::fail("packed_weights::", who, ": empty weights [", n, " x ", k, "]");
    if (ldw < k) detail::fail("packed_weights::", who, ": row stride ", ldw, " < K = ", k);
    if (w == nullptr) detail::fail("packed_weights::", who, ": weight pointer is null");
  }
  static void check_scales(span<const float> s, std::int64_t n, const char* who, const char* need) {
    if (s.size() != 1 && static_cast<std::int64_t>(s.size()) != n)
      detail::fail("packed_weights::", who, ": ", s.size(), " scales (need ", need, ")");
    for (std::size_t i = 0; i < s.size(); ++i)
      if (!(s[i] > 0.0f) || !std::isfinite(s[i]))
        detail::fail("packed_weights::", who, ": scale[", i, "] = ", s[i],
                     " must be finite and > 0");
  }
  static std::vector<float> expand(span<const float> s, std::size_t n) {
    return s.size() == 1 ? std::vector<float>(n, s[0]) : std::vector<float>(s.begin(), s.end());
  }

  weight_format format_ = weight_format::s8;
  lowbit::isa level_ = isa::portable;
  const detail::kernel_table* table_ = &detail::table_for(isa::portable);
  std::int64_t n_ = 0, k_ = 0, group_size_ = 0;
  detail::aligned_buffer data_;
  std::vector<float> scales_;
  std::vector<std::int32_t> zero_points_;
  std::vector<std::int32_t> colsum_;
  std::vector<std::uint32_t> min_offsets_, min_entries_;
  std::vector<panel_group> panel_groups_;  ///< s4 only: [panel][group]
};

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_PACKED_WEIGHTS_HPP_
