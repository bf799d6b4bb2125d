// SPDX-License-Identifier: Apache-2.0
// detail/calib/observe.hpp: plumbing shared by the observers of calibrate.hpp: runs of
// one segment as pointers (over detail/quant/walk.hpp), the validating min/max scan,
// and contraction-free float32 steps.
#ifndef LOWBIT_DETAIL_CALIB_OBSERVE_HPP_
#define LOWBIT_DETAIL_CALIB_OBSERVE_HPP_

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/walk.hpp"
#include "lowbit/error.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// Rounds `x` to float32 in memory. `a + fp32_round(b * c)` keeps the product's own
/// rounding even where the compiler would otherwise fuse it into an FMA (GCC's
/// default -ffp-contract=fast in GNU mode with -mfma): torch evaluates each tensor
/// op separately, and the moving average and the histogram search reproduce that.
inline float fp32_round(float x) noexcept {
  volatile float v = x;
  return v;
}

/// True for every finite float (false for NaN and +-Inf).
inline bool is_finite_f32(float v) noexcept { return std::fabs(v) <= FLT_MAX; }

/// Calls f(segment, ptr, stride, n, flat) for consecutive runs of `n` elements
/// (ptr[0], ptr[stride], ...) that belong to one segment, visiting the whole view
/// in row-major logical order; `flat` is the logical index of ptr[0]. Nothing is
/// called for an empty view. (The walk is for_each_segment_run, detail/quant/walk.hpp;
/// per-element segments become runs of one.)
template <class T, class F>
void for_each_run(const tensor_view<T>& x, const segmentation& s, F&& f) {
  const std::int64_t st = x.strides.empty() ? 1 : x.strides.back();
  for_each_segment_run(
      x.shape, x.strides, s,
      [&](std::int64_t seg, std::int64_t off, std::int64_t n, std::int64_t flat, bool per_element) {
        T* p = x.data + off;
        if (!per_element) {
          f(seg, p, st, n, flat);
          return;
        }
        for (std::int64_t c = 0; c < n; ++c) f(seg + c, p + c * st, st, std::int64_t{1}, flat + c);
      });
}

/// Throws the observers' non-finite error for element `flat` of value `v`.
[[noreturn]] inline void fail_non_finite(const char* who, std::int64_t flat, float v) {
  fail(who, ": non-finite value ", v, " at flat index ", flat, " (nothing was recorded)");
}

/// Per-segment min and max of `x`, validating every element (the first NaN/Inf in
/// logical order throws, naming its flat index). `mins`/`maxs` are resized to
/// s.count; a segment that owns no element keeps (+inf, -inf), which cannot happen
/// for a non-empty view.
template <class T>
void scan_minmax(const tensor_view<T>& x, const segmentation& s, const char* who,
                 std::vector<float>& mins, std::vector<float>& maxs) {
  mins.assign(static_cast<std::size_t>(s.count), INFINITY);
  maxs.assign(static_cast<std::size_t>(s.count), -INFINITY);
  for_each_run(
      x, s,
      [&](std::int64_t seg, const float* p, std::int64_t st, std::int64_t n, std::int64_t flat) {
        float mn = mins[static_cast<std::size_t>(seg)];
        float mx = maxs[static_cast<std::size_t>(seg)];
        for (std::int64_t k = 0; k < n; ++k) {
          const float v = p[k * st];
          if (!is_finite_f32(v)) fail_non_finite(who, flat + k, v);
          mn = v < mn ? v : mn;
          mx = v > mx ? v : mx;
        }
        mins[static_cast<std::size_t>(seg)] = mn;
        maxs[static_cast<std::size_t>(seg)] = mx;
      });
}

/// The elements of `x` in logical order, validated like scan_minmax; also returns
/// the min and max.
template <class T>
std::vector<float> gather_finite(const tensor_view<T>& x, const char* who, float& mn, float& mx) {
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(x.numel()));
  mn = INFINITY;
  mx = -INFINITY;
  segmentation whole;
  for_each_run(
      x, whole,
      [&](std::int64_t, const float* p, std::int64_t st, std::int64_t n, std::int64_t flat) {
        for (std::int64_t k = 0; k < n; ++k) {
          const float v = p[k * st];
          if (!is_finite_f32(v)) fail_non_finite(who, flat + k, v);
          mn = v < mn ? v : mn;
          mx = v > mx ? v : mx;
          out.push_back(v);
        }
      });
  return out;
}

/// Throws unless a batch split by `s` has the `have` segments earlier batches had
/// (have == 0: no earlier batch).
inline void check_segment_count(const segmentation& s, std::size_t have, const char* who) {
  if (have == 0 || static_cast<std::size_t>(s.count) == have) return;
  if (s.type == granularity::kind::per_channel)
    fail(who, ": this batch has ", s.count, " channels along axis ", s.axis,
         " but earlier batches had ", have);
  fail(who, ": this batch has ", s.count, " groups but earlier batches had ", have);
}

/// Running per-segment ranges shared by minmax_observer and
/// moving_average_minmax_observer.
struct range_state {
  lowbit::granularity g;
  std::vector<float> min, max;
  std::int64_t count = 0;    ///< elements observed
  std::int64_t batches = 0;  ///< non-empty batches observed

  /// Validates `x` and reduces it to per-segment ranges; false for an empty tensor.
  bool reduce(const tensor_view<const float>& x, const char* who, std::vector<float>& bmin,
              std::vector<float>& bmax) const {
    if (x.numel() == 0) return false;
    const segmentation s = make_segmentation(x.shape, g, who);
    check_segment_count(s, min.size(), who);
    scan_minmax(x, s, who, bmin, bmax);
    return true;
  }
};

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_CALIB_OBSERVE_HPP_
