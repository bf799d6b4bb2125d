// SPDX-License-Identifier: Apache-2.0
// quantize.hpp: quantize and dequantize on views (requantize: requantize.hpp).
//
//   quantize    float  -> int8 / uint8 / int4 / uint4   q = clamp(zp + rne(x / s))
//   dequantize  int*   -> float                          x = (q - zp) * s
//
// The exact per-element rules, and where each number is rounded, are in
// detail/quant/rounding.hpp; lowbit::reference walks tensors with them and defines
// the results. The functions here validate, then pick the fastest path once per
// call (AVX-512, AVX2 or xsimd portable: see isa.hpp) and produce the same bytes.
//
// Storage: quantized values are written contiguously in logical row-major order of
// the input's shape, whatever its strides: int8 into int8_t, uint8 into uint8_t,
// INT4 two per uint8_t byte (element 2i in the low nibble).
//
// Non-finite input (policy)
// -------------------------
// PyTorch maps NaN and +-Inf to quant_min, silently. lowbit refuses by default:
// nonfinite_policy::error throws lowbit::error naming the first bad element's index
// and value, before anything is written (an extra read pass over the input). With
// nonfinite_policy::saturate the caller opts into a total function: NaN -> the zero
// point (real 0), +Inf -> quant_max, -Inf -> quant_min, in one pass.
//
// Errors: lowbit::error for invalid parameters (quant_params::validate), a
// granularity that does not fit the shape, an output buffer too small or of the
// wrong element type, and non-finite input under the default policy. On error
// nothing is written.
#ifndef LOWBIT_QUANTIZE_HPP_
#define LOWBIT_QUANTIZE_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/arch/tables.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/detail/quant/rounding.hpp"
#include "lowbit/detail/quant/walk.hpp"
#include "lowbit/error.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/quantized_tensor.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

/// What quantize does with NaN and +-Inf (see the file comment).
enum class nonfinite_policy : std::uint8_t { error, saturate };

struct quantize_options {
  nonfinite_policy nonfinite = nonfinite_policy::error;
};

namespace detail {

/// Quantize one contiguous run [x, x + n) into logical elements [start, start + n)
/// of `out` with the table's kernels. Vec: per-element params from inv/zpf (indexed
/// from 0 for this run).
template <bool Vec, bool Nan>
inline void quantize_run(const kernel_table& kt, dtype t, const float* x, std::int64_t n,
                         const float* inv, const float* zpf, float c_inv, float c_zp, float lo,
                         float hi, std::uint8_t* out, std::int64_t start) noexcept {
  if (n <= 0) return;
  const bool nib = bits(t) == 4;
  if (nib && start % 2 == 1) {  // odd start: merge the high nibble, continue even
    float v = x[0];
    if (Nan && std::isnan(v)) v = 0.0f;
    float r = (Vec ? zpf[0] : c_zp) + round_half_even(v * (Vec ? inv[0] : c_inv));
    r = r < lo ? lo : (r > hi ? hi : r);
    std::uint8_t& b = out[start / 2];
    b = static_cast<std::uint8_t>((b & 0x0F) | ((static_cast<std::int32_t>(r) & 0x0F) << 4));
    ++x, --n, ++start;
    if (Vec) ++inv, ++zpf;
    if (n == 0) return;
  }
  const qstore st = nib ? qstore::s4 : (t == dtype::uint8 ? qstore::u8 : qstore::s8);
  kt.quant.quantize[static_cast<int>(st)][Vec][Nan](x, n, inv, zpf, qconst{c_inv, c_zp, lo, hi},
                                                    nib ? out + start / 2 : out + start);
}

/// Dequantize logical elements [start, start + n) of `q` into out[0, n).
template <bool Vec>
inline void dequantize_run(const kernel_table& kt, dtype t, const std::uint8_t* q,
                           std::int64_t start, std::int64_t n, const float* scale, const float* zpf,
                           float s, float z, float* out) noexcept {
  if (n <= 0) return;
  if (bits(t) == 4 && start % 2 == 1) {
    out[0] = dequantize_one(load_stored(t, q, start), Vec ? scale[0] : s,
                            static_cast<std::int32_t>(Vec ? zpf[0] : z));
    ++out, --n, ++start;
    if (Vec) ++scale, ++zpf;
    if (n == 0) return;
  }
  const std::uint8_t* p = bits(t) == 4 ? q + start / 2 : q + start;
  kt.quant.dequantize[static_cast<int>(t)][Vec](p, n, scale, zpf, s, z, out);
}

/// Index of the first NaN/Inf of the view in logical order, or -1: the table's
/// scan on contiguous data, element by element otherwise.
inline std::int64_t find_nonfinite(const kernel_table& kt, const tensor_view<const float>& x) {
  if (x.is_contiguous()) return kt.quant.find_nonfinite(x.data, x.numel());
  std::int64_t bad = -1;
  for_each_index(x.shape, x.strides, [&](std::int64_t flat, std::int64_t off, const std::int64_t*) {
    if (bad < 0 && !std::isfinite(x.data[off])) bad = flat;
  });
  return bad;
}

/// Throws "<who>: non-finite value <v> at index <i>" for the first NaN/Inf.
inline void check_finite(const kernel_table& kt, const tensor_view<const float>& x,
                         const char* who) {
  const std::int64_t i = find_nonfinite(kt, x);
  if (i < 0) return;
  float v = 0.0f;
  for_each_index(x.shape, x.strides, [&](std::int64_t flat, std::int64_t off, const std::int64_t*) {
    if (flat == i) v = x.data[off];
  });
  fail(who, ": non-finite value ", v, " at index ", i);
}

template <bool Nan>
inline void quantize_into(const kernel_table& kt, const tensor_view<const float>& x,
                          const quant_params& p, std::uint8_t* out) {
  const std::int64_t n = x.numel();
  if (n == 0) return;
  const std::size_t np = p.scales.size();
  std::vector<float> inv(np), zpf(np);
  for (std::size_t i = 0; i < np; ++i) {
    inv[i] = 1.0f / p.scales[i];
    zpf[i] = static_cast<float>(p.zero_points[i]);
  }
  const float lo = static_cast<float>(p.quant_min), hi = static_cast<float>(p.quant_max);
  const dtype t = p.type;
  if (x.rank() == 0 || (p.granularity.is_per_tensor() && x.is_contiguous())) {
    quantize_run<false, Nan>(kt, t, x.data, n, nullptr, nullptr, inv[0], zpf[0], lo, hi, out, 0);
    return;
  }
  // Runs whose elements are strided are gathered into a contiguous row first, so
  // every layout runs the same kernels (detail/quant/walk.hpp has the walk).
  const std::int64_t step = x.strides.back();
  std::vector<float> row(step == 1 ? 0 : static_cast<std::size_t>(x.shape.back()));
  for_each_segment_run(x.shape, x.strides, segmentation_of(p, x.shape),
                       [&](std::int64_t seg, std::int64_t off, std::int64_t len, std::int64_t start,
                           bool per_element) {
                         const float* src = x.data + off;
                         if (step != 1) {
                           for (std::int64_t i = 0; i < len; ++i)
                             row[static_cast<std::size_t>(i)] = src[i * step];
                           src = row.data();
                         }
                         const auto k = static_cast<std::size_t>(seg);
                         if (per_element) {
                           quantize_run<true, Nan>(kt, t, src, len, inv.data() + k, zpf.data() + k,
                                                   0, 0, lo, hi, out, start);
                         } else {
                           quantize_run<false, Nan>(kt, t, src, len, nullptr, nullptr, inv[k],
                                                    zpf[k], lo, hi, out, start);
                         }
                       });
}

inline void quantize_checked(const kernel_table& kt, const tensor_view<const float>& x,
                             const quant_params& p, std::uint8_t* out, std::size_t out_bytes,
                             const quantize_options& o) {
  p.validate(x.shape);
  const std::size_t need = storage_bytes(p.type, static_cast<std::size_t>(x.numel()));
  if (out_bytes < need)
    fail("quantize: output buffer too small: ", x.numel(), " ", to_string(p.type), " values need ",
         need, " bytes, got ", out_bytes);
  if (x.numel() > 0 && x.data == nullptr) fail("quantize: input data is null");
  if (o.nonfinite == nonfinite_policy::error) {
    check_finite(kt, x, "quantize");
    quantize_into<false>(kt, x, p, out);
  } else {
    quantize_into<true>(kt, x, p, out);
  }
}

inline void dequantize_checked(const kernel_table& kt, const std::uint8_t* q, std::size_t q_bytes,
                               const quant_params& p, const tensor_view<float>& out) {
  p.validate(out.shape);
  const std::int64_t n = out.numel();
  const std::size_t need = storage_bytes(p.type, static_cast<std::size_t>(n));
  if (q_bytes < need)
    fail("dequantize: input holds ", q_bytes, " bytes but ", n, " ", to_string(p.type),
         " values need ", need);
  if (n == 0) return;
  const dtype t = p.type;
  const std::size_t np = p.scales.size();
  std::vector<float> zpf(np);
  for (std::size_t i = 0; i < np; ++i) zpf[i] = static_cast<float>(p.zero_points[i]);
  if (out.rank() == 0 || (p.granularity.is_per_tensor() && out.is_contiguous())) {
    dequantize_run<false>(kt, t, q, 0, n, nullptr, nullptr, p.scales[0], zpf[0], out.data);
    return;
  }
  // Strided runs are dequantized into a contiguous row, then scattered.
  const std::int64_t step = out.strides.back();
  std::vector<float> row(step == 1 ? 0 : static_cast<std::size_t>(out.shape.back()));
  for_each_segment_run(out.shape, out.strides, segmentation_of(p, out.shape),
                       [&](std::int64_t seg, std::int64_t off, std::int64_t len, std::int64_t start,
                           bool per_element) {
                         float* dst = step != 1 ? row.data() : out.data + off;
                         const auto k = static_cast<std::size_t>(seg);
                         if (per_element) {
                           dequantize_run<true>(kt, t, q, start, len, p.scales.data() + k,
                                                zpf.data() + k, 0, 0, dst);
                         } else {
                           dequantize_run<false>(kt, t, q, start, len, nullptr, nullptr,
                                                 p.scales[k], zpf[k], dst);
                         }
                         if (step != 1)
                           for (std::int64_t i = 0; i < len; ++i)
                             out.data[off + i * step] = row[static_cast<std::size_t>(i)];
                       });
}

}  // namespace detail

/// Quantizes `x` into `out` (int8 storage). See the file comment.
inline void quantize(tensor_view<const float> x, const quant_params& p, span<std::int8_t> out,
                     quantize_options o = {}) {
  detail::check_storage_type(p.type, true, "quantize");
  detail::quantize_checked(detail::best_table(), x, p, reinterpret_cast<std::uint8_t*>(out.data()),
                           out.size(), o);
}

/// Quantizes `x` into `out` (uint8, or packed int4/uint4 storage).
inline void quantize(tensor_view<const float> x, const quant_params& p, span<std::uint8_t> out,
                     quantize_options o = {}) {
  detail::check_storage_type(p.type, false, "quantize");
  detail::quantize_checked(detail::best_table(), x, p, out.data(), out.size(), o);
}

/// Dequantizes int8 storage into `out`, whose shape is the tensor's logical shape.
inline void dequantize(span<const std::int8_t> q, const quant_params& p, tensor_view<float> out) {
  detail::check_storage_type(p.type, true, "dequantize");
  detail::dequantize_checked(detail::best_table(), reinterpret_cast<const std::uint8_t*>(q.data()),
                             q.size(), p, out);
}

/// Dequantizes uint8 / packed int4 / packed uint4 storage into `out`.
inline void dequantize(span<const std::uint8_t> q, const quant_params& p, tensor_view<float> out) {
  detail::check_storage_type(p.type, false, "dequantize");
  detail::dequantize_checked(detail::best_table(), q.data(), q.size(), p, out);
}

/// Quantizes into a new quantized_tensor.
inline quantized_tensor quantize(tensor_view<const float> x, const quant_params& p,
                                 quantize_options o = {}) {
  quantized_tensor q;
  q.params = p;
  q.shape = x.shape;
  p.validate(x.shape);  // before allocating
  q.data.resize(storage_bytes(p.type, static_cast<std::size_t>(x.numel())));
  detail::quantize_checked(detail::best_table(), x, p, q.data.data(), q.data.size(), o);
  return q;
}

/// Dequantizes into a new contiguous float vector (logical row-major order).
inline std::vector<float> dequantize(const quantized_tensor& q) {
  std::vector<float> out(static_cast<std::size_t>(q.numel()));
  detail::dequantize_checked(detail::best_table(), q.data.data(), q.data.size(), q.params,
                             tensor_view<float>(out.data(), q.shape));
  return out;
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_QUANTIZE_HPP_
