// SPDX-License-Identifier: Apache-2.0
// detail/calib/histogram.hpp: PyTorch 1.13's HistogramObserver, step by step in the float
// precision torch uses (torch/ao/quantization/observer.py: forward, _adjust_min_max,
// _combine_histograms, _non_linear_param_search, _compute_quantization_error, plus
// the CPU torch.histc kernel). calibrate.hpp documents the semantics and the two
// deliberate deviations (histogram_compat).
//
// Precision map (torch tensors are float32 unless noted):
//   histc             edges float(lo), float(hi); bin = int64((x - lo) * bins / (hi - lo))
//                     in float32; x outside [lo, hi] is dropped; x == hi goes to the last bin
//   _adjust_min_max   float32 throughout; start_idx = int(round_half_even(float32))
//   _combine          cumulative sums in double, the shifted copy rounded to float32
//   search            cSum float32 (accumulated in double, as ATen's cumsum), thresholds
//                     next_alpha * total in double compared as float32; alpha/beta double
//   error             bin widths double (Python floats from .item()), element-wise terms
//                     float32 (a Python float meets a float32 tensor as float32)
#ifndef LOWBIT_DETAIL_CALIB_HISTOGRAM_HPP_
#define LOWBIT_DETAIL_CALIB_HISTOGRAM_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "lowbit/detail/calib/observe.hpp"
#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// The bin torch.histc's linear kernel gives x for float32 edges [l, r] (l < r):
/// -1 when x is outside the edges.
inline std::int64_t histc_bin(float x, float l, float r, std::int64_t bins) noexcept {
  if (!(x >= l && x <= r)) return -1;
  const float q = (x - l) * static_cast<float>(bins) / (r - l);
  if (!(q >= 0.0f)) return 0;  // NaN only when (r - l) overflowed; torch would be UB here
  if (q >= static_cast<float>(bins)) return bins - 1;
  return static_cast<std::int64_t>(q);
}

/// torch.histc(x, bins, min=lo, max=hi) (CPU). lo == hi means "use the data's
/// [min, max]", and a still empty range becomes [lo - 1, hi + 1], as ATen does.
inline std::vector<float> torch_histc(const std::vector<float>& x, float data_min, float data_max,
                                      double lo, double hi, std::int64_t bins) {
  if (lo == hi) {
    lo = data_min;
    hi = data_max;
  }
  if (lo == hi) {
    lo -= 1.0;
    hi += 1.0;
  }
  const float l = static_cast<float>(lo), r = static_cast<float>(hi);
  std::vector<std::int64_t> counts(static_cast<std::size_t>(bins), 0);
  for (const float v : x) {
    const std::int64_t b = histc_bin(v, l, r, bins);
    if (b >= 0) ++counts[static_cast<std::size_t>(b)];
  }
  std::vector<float> out(counts.size());
  for (std::size_t i = 0; i < counts.size(); ++i) out[i] = static_cast<float>(counts[i]);
  return out;
}

/// torch 1.13 _combine_histograms without materializing the bins * downsample_rate
/// grid: `old` upsampled by `U` (each cell holding the old count, as
/// repeat_interleave does), placed at fine cell `start`, summed over windows of `D`
/// cells via double prefix sums, the shifted prefix rounded to float32, divided by
/// U, added to `fresh`. Cells past the grid's end (torch: a shape error) go to the
/// last bin.
inline std::vector<float> combine_histograms(const std::vector<float>& fresh,
                                             const std::vector<float>& old, std::int64_t U,
                                             std::int64_t D, std::int64_t start) {
  const std::int64_t n = static_cast<std::int64_t>(old.size());
  std::vector<float> out(fresh);
  double acc = 0.0, prev = 0.0;
  std::int64_t i = 0, used = 0;
  for (std::int64_t j = 0; j < n; ++j) {
    const bool last = j == n - 1;
    const std::int64_t F = (j + 1) * D;
    while (i < n) {
      const std::int64_t begin = start + i * U + used;
      if (!last && begin >= F) break;
      const std::int64_t end = start + (i + 1) * U;
      const std::int64_t stop = last ? end : std::min(end, F);
      acc +=
          static_cast<double>(old[static_cast<std::size_t>(i)]) * static_cast<double>(stop - begin);
      used += stop - begin;
      if (used == U) {
        ++i;
        used = 0;
      }
    }
    const double shifted = j == 0 ? 0.0 : static_cast<double>(static_cast<float>(prev));
    const float add = static_cast<float>((acc - shifted) / static_cast<double>(U));
    out[static_cast<std::size_t>(j)] = out[static_cast<std::size_t>(j)] + add;
    prev = acc;
  }
  return out;
}

/// torch's div(a, b, rounding_mode='floor') for float32 (c10::div_floor_floating).
inline float torch_div_floor(float a, float b) noexcept {
  if (b == 0.0f) return a / b;
  const float mod = std::fmod(a, b);
  float div = (a - mod) / b;
  if (mod != 0.0f && ((b < 0.0f) != (mod < 0.0f))) div -= 1.0f;
  if (div == 0.0f) return std::copysign(0.0f, a / b);
  float floordiv = std::floor(div);
  if (div - floordiv > 0.5f) floordiv += 1.0f;
  return floordiv;
}

/// The running state of a HistogramObserver (histogram, min_val, max_val).
struct torch_histogram {
  std::int64_t bins = 2048;
  std::int64_t upsample_rate = 128;
  bool torch_1_13 = false;  ///< reproduce torch 1.13's int() edges and constant-reset
  std::vector<float> hist;
  float min = INFINITY;
  float max = -INFINITY;

  bool empty() const noexcept { return !(min <= max); }

  /// Edge passed to torch.histc: 1.13 truncates it with Python int() (pytorch#83672).
  double edge(float v) const noexcept {
    return torch_1_13 ? std::trunc(static_cast<double>(v)) : static_cast<double>(v);
  }

  /// forward(x) for a non-empty, finite batch with min bmin and max bmax.
  void observe(const std::vector<float>& x, float bmin, float bmax) {
    const bool same_values = !empty() && min == max;
    if (empty() || (same_values && torch_1_13)) {
      min = bmin;
      max = bmax;
      hist = torch_histc(x, bmin, bmax, edge(bmin), edge(bmax), bins);
      return;
    }
    const float cmin0 = std::min(bmin, min), cmax0 = std::max(bmax, max);
    if (same_values) {
      // lowbit: torch 1.13 restarts from this batch here and loses the earlier
      // counts; keep them in the bin their common value falls in (torch >= 2.3 does).
      double total = 0.0;
      for (const float h : hist) total += h;
      std::vector<float> h = torch_histc(x, bmin, bmax, cmin0, cmax0, bins);
      if (cmin0 == cmax0) {
        for (std::size_t k = 0; k < h.size(); ++k) h[k] += hist[k];  // same +-1 layout
      } else {
        const std::int64_t b = histc_bin(min, cmin0, cmax0, bins);
        h[static_cast<std::size_t>(b)] += static_cast<float>(total);
      }
      hist = std::move(h);
      min = cmin0;
      max = cmax0;
      return;
    }
    // _adjust_min_max, float32.
    const float hist_bin_width = (max - min) / static_cast<float>(bins * upsample_rate);
    const float grid = fp32_round(static_cast<float>(bins) * hist_bin_width);
    const float ratio = std::ceil((cmax0 - cmin0) / grid);
    if (!(hist_bin_width > 0.0f) || !(ratio >= 1.0f) || !(ratio <= 16777216.0f)) {
      // The old range is negligible next to the new one (or its bin width underflows):
      // torch would divide by zero or allocate bins * ratio floats. Put the old counts
      // in the bin of the old minimum on the unadjusted combined range.
      double total = 0.0;
      for (const float h : hist) total += h;
      std::vector<float> h = torch_histc(x, bmin, bmax, edge(cmin0), edge(cmax0), bins);
      h[static_cast<std::size_t>(std::max<std::int64_t>(0, histc_bin(min, cmin0, cmax0, bins)))] +=
          static_cast<float>(total);
      hist = std::move(h);
      min = cmin0;
      max = cmax0;
      return;
    }
    const auto downsample_rate = static_cast<std::int64_t>(ratio);
    const float e = fp32_round(static_cast<float>(downsample_rate) * grid) - (cmax0 - cmin0);
    const float cmin = cmin0;
    // torch: cmax0 + e. e can round below 0, and then histc drops the batch maximum;
    // lowbit never lets the range shrink below the data.
    const float cmax = torch_1_13 ? cmax0 + e : std::max(cmax0 + e, cmax0);
    const auto start_idx = static_cast<std::int64_t>(std::nearbyint((min - cmin) / hist_bin_width));
    std::vector<float> h = torch_histc(x, bmin, bmax, edge(cmin), edge(cmax), bins);
    if (cmin == min && cmax == max) {
      for (std::size_t k = 0; k < h.size(); ++k) h[k] += hist[k];
    } else {
      h = combine_histograms(h, hist, upsample_rate, downsample_rate,
                             std::max<std::int64_t>(0, start_idx));
    }
    hist = std::move(h);
    min = cmin;
    max = cmax;
  }

  /// _compute_quantization_error(next_start_bin, next_end_bin) for dst_nbins levels.
  double quantization_error(std::int64_t start_bin, std::int64_t end_bin,
                            std::int64_t dst_nbins) const {
    const double bin_width =
        (static_cast<double>(max) - static_cast<double>(min)) / static_cast<double>(bins);
    const double dst_bin_width =
        bin_width * static_cast<double>(end_bin - start_bin + 1) / static_cast<double>(dst_nbins);
    if (dst_bin_width == 0.0) return 0.0;
    const float bw = static_cast<float>(bin_width);
    const float dbw = static_cast<float>(dst_bin_width);
    const float half = static_cast<float>(dst_bin_width / 2);
    const float neg_half = static_cast<float>(-dst_bin_width / 2);
    const float top = static_cast<float>(dst_nbins - 1);
    const float half3 = fp32_round(half * half * half);
    const float neg_half3 = fp32_round(neg_half * neg_half * neg_half);
    const float mid = (half3 - neg_half3) / 3.0f;  // _get_norm(-dbw/2, dbw/2, 1)
    double sum = 0.0;
    for (std::int64_t i = 0; i < bins; ++i) {
      const float src_begin = fp32_round(static_cast<float>(i - start_bin) * bw);
      const float src_end = src_begin + bw;
      const float dst_begin = std::min(std::max(torch_div_floor(src_begin, dbw), 0.0f), top);
      const float dst_begin_center = fp32_round((dst_begin + 0.5f) * dbw);
      const float dst_end = std::min(std::max(torch_div_floor(src_end, dbw), 0.0f), top);
      const float density = hist[static_cast<std::size_t>(i)] / bw;
      const float d0 = src_begin - dst_begin_center;
      float norm = fp32_round(density * ((half3 - fp32_round(d0 * d0 * d0)) / 3.0f));
      norm = norm + fp32_round((dst_end - dst_begin - 1.0f) * fp32_round(density * mid));
      const float dst_end_center = fp32_round(dst_end * dbw) + half;
      const float d1 = src_end - dst_end_center;
      norm = norm + fp32_round(density * ((fp32_round(d1 * d1 * d1) - neg_half3) / 3.0f));
      sum += norm;
    }
    return static_cast<double>(static_cast<float>(sum));  // norm.sum().item()
  }

  /// _non_linear_param_search: the [new_min, new_max] minimizing the L2 error
  /// estimate over the histogram, for dst_nbins quantization levels.
  std::pair<float, float> search(std::int64_t dst_nbins) const {
    const float bin_width = (max - min) / static_cast<float>(bins);
    double acc = 0.0;
    std::vector<float> csum(hist.size());
    for (std::size_t k = 0; k < hist.size(); ++k) {
      acc += hist[k];
      csum[k] = static_cast<float>(acc);
    }
    const double total = static_cast<double>(static_cast<float>(acc));
    if (!(total > 0.0)) return {min, max};
    const double stepsize = 1e-5;
    double alpha = 0.0, beta = 1.0;
    std::int64_t start_bin = 0, end_bin = bins - 1;
    double norm_min = INFINITY;
    const float* c = csum.data();
    while (alpha < beta) {
      const double next_alpha = alpha + stepsize;
      const double next_beta = beta - stepsize;
      // l: first bin in [start_bin, end_bin) with cSum >= next_alpha * total, else
      // end_bin; r: last bin in (start_bin, end_bin] with cSum <= next_beta * total,
      // else start_bin (torch's two while loops; cSum is non-decreasing).
      const float ta = static_cast<float>(next_alpha * total);
      const float tb = static_cast<float>(next_beta * total);
      const std::int64_t l = std::lower_bound(c + start_bin, c + end_bin, ta) - c;
      const std::int64_t r = (std::upper_bound(c + start_bin + 1, c + end_bin + 1, tb) - c) - 1;
      std::int64_t next_start = start_bin, next_end = end_bin;
      if ((l - start_bin) > (end_bin - r)) {
        next_start = l;
        alpha = next_alpha;
      } else {
        next_end = r;
        beta = next_beta;
      }
      if (next_start == start_bin && next_end == end_bin) continue;
      const double norm = quantization_error(next_start, next_end, dst_nbins);
      if (norm > norm_min) break;
      norm_min = norm;
      start_bin = next_start;
      end_bin = next_end;
    }
    const float new_min = min + fp32_round(bin_width * static_cast<float>(start_bin));
    const float new_max = min + fp32_round(bin_width * static_cast<float>(end_bin + 1));
    return {new_min, new_max};
  }
};

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_CALIB_HISTOGRAM_HPP_
