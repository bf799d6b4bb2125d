// SPDX-License-Identifier: Apache-2.0
// calibrate.hpp: observers that watch float tensors and choose quantization
// parameters from what they saw, and the MSE clipping search for weights.
//
// What an observer is
// -------------------
// Quantization needs a range [min, max] per tensor (or per channel, or per group);
// choose_qparams.hpp turns a range into (scale, zero_point). An observer decides the
// range. It watches calibration data one batch at a time and keeps a summary (running
// extremes, a histogram, counts), never the data itself, so a calibration set of any
// size streams through it. Lifecycle:
//
//   lowbit::histogram_observer obs;               // 1. construct (summary kind, granularity)
//   for (auto& batch : calibration_set)
//     obs.observe(batch);                         // 2. observe, observe, ...
//   auto p = obs.compute(qparams_options::affine());  // 3. compute: range -> params
//   obs.reset();                                  // 4. optionally start over
//
// compute() is const and may be called any number of times, with different options
// (int8 and uint8, symmetric and affine) from one pass over the data. Every observer
// ENDS in choose_qparams (the static, PyTorch rule): what differs between observers
// is only the range they hand it, so the final rule (zero always representable,
// scale floored at eps, reduce_range, the narrow convention) is the same everywhere.
//
// Rules common to all observers
// -----------------------------
// - observe() of an EMPTY tensor does nothing (no check, no count), as in PyTorch.
// - NaN or +-Inf anywhere in a batch: lowbit::error naming the observer, the first
//   offending element's flat (row-major logical) index and its value; the observer
//   is left exactly as it was (the whole batch is validated before anything changes).
// - compute() before any non-empty batch: lowbit::error (PyTorch warns and returns
//   scale 1, zero_point 0, which silently quantizes garbage).
// - Granularity: the min-max, moving-average and percentile observers and
//   choose_qparams_mse take per_tensor, per_channel or per_group; the histogram and
//   entropy observers are per-tensor, like their torch and TensorRT originals.
// - per_channel{axis}: axis indexes the batch's dimensions, negative counts from the
//   end; every batch must have the same number of channels along it (the error names
//   both counts). per_group{group_size}: 2-D [rows x K] batches, one range per
//   group_size consecutive elements of a row, params stored row-major [rows x K/gs].
// - count() is the number of elements observed, batches() the number of non-empty
//   observe() calls. Observers are not thread-safe: call observe() from one thread
//   at a time (two observers cannot be merged).
//
// Which one to use
// ----------------
//   minmax_observer                 weights (per_channel{0}); activations that have no
//                                   outliers. Exact, cheap, but one outlier widens the
//                                   range for every other value.
//   moving_average_minmax_observer  activations during quantization-aware training or
//                                   streaming: tracks drifting ranges, damps outliers.
//   percentile_observer             activations with rare outliers: clip at 99.9-99.999%.
//                                   Simple, explainable, batch-split independent.
//   histogram_observer              PyTorch's default activation observer for x86
//                                   (fbgemm/x86 qconfig, with reduce_range): use it to
//                                   reproduce torch PTQ; L2-error-driven clipping.
//   entropy_observer                TensorRT's entropy calibration (EntropyCalibrator2,
//                                   "preferred"); NVIDIA's guidance: entropy for CNNs,
//                                   MinMax for NLP/transformer models.
//   choose_qparams_mse              weights, especially INT4 per-group: the clip ratio
//                                   with the smallest weight reconstruction error.
//
// Exact semantics
// ---------------
// minmax_observer (torch.ao.quantization MinMaxObserver / PerChannelMinMaxObserver):
//   min = min over batches of the batch min, max likewise, per segment.
//
// moving_average_minmax_observer (MovingAverageMinMaxObserver, and its per-channel
// twin): the first batch sets min/max; each later batch, in float32 with each
// operation rounded (no fused multiply-add),
//   min = min + c * (batch_min - min),   max = max + c * (batch_max - max),
// c = averaging_constant in (0, 1] (torch default 0.01; c = 1 follows the last batch,
// up to the rounding of min + (batch_min - min)).
//
// percentile_observer: symmetric schemes clip to [-t, t], t = the p-th percentile of
// |x|; affine schemes to [P(100 - p), P(p)] of x (zero is then included by the rule).
// p in [50, 100]. The percentile is numpy's default ('linear') definition over all
// observed elements: with the n values sorted, h = (n - 1) p / 100, interpolate
// between the floor(h)-th and next order statistic. Method (detail/calib/quantile_sketch.hpp):
// exact counts in log-linear bins, 2048 per power of two (the float32 bit pattern
// without its low 12 mantissa bits), placing a rank uniformly inside its bin. Bound:
//   |estimate - exact| <= 2^-11 * max(|x_(floor h)|, |x_(floor h + 1)|)   (~0.05 %)
// (subnormal values: absolute 2^-137), and P(100) is the exact maximum. 0.05 % is
// 1/16 of an int8 step (t / 127.5). Counting is exact, so the result does not depend
// on how the data is split into batches; memory is one (key, count) pair per
// occupied bin: at most min(elements, 2^20) per segment.
//
// histogram_observer (HistogramObserver of torch 1.13, torch/ao/quantization/
// observer.py), per-tensor, reproduced op by op in torch's float32/double mix
// (detail/calib/histogram.hpp):
//   - first batch: min, max = aminmax(x); histogram = histc(x, bins, min, max);
//   - later batches: the combined range [min(min, bmin), max(max, bmax)] is widened
//     so that it is a whole number `downsample_rate` of old-range/(bins *
//     upsample_rate) cells (_adjust_min_max); x is binned on it; the old histogram
//     is upsampled by upsample_rate, shifted and summed back down by downsample_rate
//     (_combine_histograms); if the range did not change the counts just add;
//   - compute: _non_linear_param_search moves the lower and upper histogram bins
//     inward in 1e-5 quantile steps (whichever side has moved less), estimating the
//     L2 quantization error with dst_nbins = 2^bits(dtype) levels (256 for 8-bit,
//     16 for 4-bit; reduce_range does NOT shrink it, as in torch) and stops when the
//     error grows; [min + w * start_bin, min + w * (end_bin + 1)] goes to
//     choose_qparams, where reduce_range and the scheme apply.
//   Deliberate deviations (histogram_compat::lowbit, the default):
//   1. torch 1.13 passes int(min) and int(max) to torch.histc (pytorch#83672, a
//      mistake introduced by pytorch#45630 and fixed in later releases): values
//      outside [trunc(min), trunc(max)] are dropped and the bins are read as if they
//      spanned [min, max]. lowbit bins on the real float range.
//   2. When everything seen so far is one value (min == max), torch 1.13 discards
//      that histogram at the next batch; lowbit keeps those counts in the bin of that
//      value (what torch >= 2.3 does).
//   3. When the old range is negligible (old bin width underflows, or the new range
//      is more than 2^24 fine cells wide) torch divides by zero or allocates
//      bins * downsample_rate floats; lowbit puts the old counts in one bin. And
//      where _adjust_min_max's float rounding would end the widened range just
//      below the data maximum (torch then drops that value), lowbit keeps the max.
//   histogram_compat::torch_1_13 restores 1 and 2 and matches torch 1.13 bit for bit
//   on the conformance cases (tests/test_calibrate.cpp). Exactness assumes float32
//   arithmetic without excess precision (SSE, not x87); products that torch rounds
//   are kept rounded even under FMA contraction.
//
// entropy_observer (TensorRT entropy calibration: GTC 2017 S7310 "8-bit Inference
// with TensorRT", pseudocode also in NVIDIA forum thread 108045): |x| in `bins`
// (2048) bins over [0, amax]; for each candidate i in [max(L, b0 + L), bins), with
// L quantized levels (L = (quant_max - quant_min + 1) / 2: 128 for int8 and uint8,
// 64 with reduce_range, 8 for int4) and b0 the first non-empty bin:
//   P = bins [0, i), with the outlier count sum(bins [i, bins)) added to P[i-1];
//   Q = bins [0, i) (outliers excluded) merged into L levels, level j taking bins
//       [floor(j i / L), floor((j + 1) i / L)), then expanded back: each level's sum
//       spread evenly over the bins of that level where P is non-zero;
//   KL(P || Q) with both normalized;
// the first i with the smallest divergence gives the threshold t = (i + 0.5) * amax /
// bins (the slide's "(m + 0.5) * width"). Symmetric result [-t, t]; affine schemes use
// [-t, t] intersected with the data range (zero included), so one-sided data keeps
// its side. Deviation: TensorRT starts at i = L. That assumes data near zero (bin 0
// occupied, as for ReLU outputs, where the two agree); for data that keeps away from
// zero (|x| >= 0.25, say) a candidate just above the smallest value holds all of
// [0, i) in one level, P and Q both become one spike and KL(P || Q) = 0, clipping
// everything to the minimum. Starting L bins above the first occupied bin keeps L
// levels of data inside every candidate. Decisions where TensorRT publishes no code:
// a candidate where some bin has P > 0 and Q = 0 scores +inf (no smoothing); when
// every candidate is +inf or there is none (constant data: all mass in the top bin)
// t = amax; all-zero data gives t = 0 and scale = eps. Across batches the histogram
// grows by exact power-of-two re-binning
// of a 16x finer histogram (detail/calib/entropy.hpp: a count moves by less than 1/8 of a
// search bin; exactly 0 when the first batch holds the maximum).
//
// choose_qparams_mse: per segment (tensor, channel or group) with data range
// [lo, hi], candidates r = min_ratio + (1 - min_ratio) k / grid, k = 0..grid (r = 1
// is plain min-max); candidate range [r lo, r hi], i.e. r * max|x| for symmetric
// schemes and both ends scaled for affine ones; (scale, zero_point) by the static rule;
// error = sum of (x - dequantize(quantize(x)))^2 with the library's rounding
// (detail::quantize_one / dequantize_one), accumulated in double. The smallest error
// wins; ties go to the larger ratio. The result is therefore never worse than min-max
// on the weights themselves. Cost: (grid + 1) quantize-dequantize passes.
#ifndef LOWBIT_CALIBRATE_HPP_
#define LOWBIT_CALIBRATE_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "lowbit/choose_qparams.hpp"
#include "lowbit/detail/calib/entropy.hpp"
#include "lowbit/detail/calib/histogram.hpp"
#include "lowbit/detail/calib/observe.hpp"
#include "lowbit/detail/calib/quantile_sketch.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/rounding.hpp"
#include "lowbit/error.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

namespace detail {

inline void check_granularity(const lowbit::granularity& g, const char* who) {
  if (g.is_per_group() && g.group_size <= 0)
    fail(who, ": group_size must be > 0, got ", g.group_size);
}

/// choose_qparams over per-segment ranges, recording `g` (per_tensor: one range).
inline quant_params qparams_from_ranges(const std::vector<float>& mins,
                                        const std::vector<float>& maxs, const qparams_options& o,
                                        const lowbit::granularity& g) {
  if (g.is_per_tensor()) return choose_qparams(mins[0], maxs[0], o);
  return choose_qparams(span<const float>(mins), span<const float>(maxs), o, g);
}

[[noreturn]] inline void fail_no_data(const char* who) {
  fail(who, ": no data observed yet (observe() a non-empty tensor first)");
}

}  // namespace detail

/// Running min and max (PyTorch MinMaxObserver / PerChannelMinMaxObserver).
class minmax_observer {
 public:
  explicit minmax_observer(lowbit::granularity g = per_tensor{}) {
    detail::check_granularity(g, "minmax_observer");
    s_.g = g;
  }

  /// Folds a batch in: min of mins, max of maxes (per segment).
  void observe(tensor_view<const float> x) {
    std::vector<float> bmin, bmax;
    if (!s_.reduce(x, "minmax_observer::observe", bmin, bmax)) return;
    if (s_.min.empty()) {
      s_.min = std::move(bmin);
      s_.max = std::move(bmax);
    } else {
      for (std::size_t i = 0; i < bmin.size(); ++i) {
        s_.min[i] = std::min(s_.min[i], bmin[i]);
        s_.max[i] = std::max(s_.max[i], bmax[i]);
      }
    }
    s_.count += x.numel();
    ++s_.batches;
  }

  /// Parameters for the observed range(s).
  quant_params compute(const qparams_options& o) const {
    if (s_.batches == 0) detail::fail_no_data("minmax_observer::compute");
    return detail::qparams_from_ranges(s_.min, s_.max, o, s_.g);
  }

  const std::vector<float>& min() const noexcept { return s_.min; }  ///< one per segment
  const std::vector<float>& max() const noexcept { return s_.max; }
  std::int64_t count() const noexcept { return s_.count; }
  std::int64_t batches() const noexcept { return s_.batches; }
  const lowbit::granularity& granularity() const noexcept { return s_.g; }
  void reset() noexcept {
    s_.min.clear();
    s_.max.clear();
    s_.count = 0;
    s_.batches = 0;
  }

 private:
  detail::range_state s_;
};

/// Exponential moving average of batch ranges (PyTorch MovingAverageMinMaxObserver).
class moving_average_minmax_observer {
 public:
  explicit moving_average_minmax_observer(float averaging_constant = 0.01f,
                                          lowbit::granularity g = per_tensor{})
      : c_(averaging_constant) {
    if (!(averaging_constant > 0.0f && averaging_constant <= 1.0f))
      detail::fail("moving_average_minmax_observer: averaging_constant must be in (0, 1], got ",
                   averaging_constant);
    detail::check_granularity(g, "moving_average_minmax_observer");
    s_.g = g;
  }

  /// First batch: its range. Later: min += c * (batch_min - min), same for max.
  void observe(tensor_view<const float> x) {
    std::vector<float> bmin, bmax;
    if (!s_.reduce(x, "moving_average_minmax_observer::observe", bmin, bmax)) return;
    if (s_.min.empty()) {
      s_.min = std::move(bmin);
      s_.max = std::move(bmax);
    } else {
      for (std::size_t i = 0; i < bmin.size(); ++i) {
        s_.min[i] = s_.min[i] + detail::fp32_round(c_ * (bmin[i] - s_.min[i]));
        s_.max[i] = s_.max[i] + detail::fp32_round(c_ * (bmax[i] - s_.max[i]));
      }
    }
    s_.count += x.numel();
    ++s_.batches;
  }

  quant_params compute(const qparams_options& o) const {
    if (s_.batches == 0) detail::fail_no_data("moving_average_minmax_observer::compute");
    return detail::qparams_from_ranges(s_.min, s_.max, o, s_.g);
  }

  float averaging_constant() const noexcept { return c_; }
  const std::vector<float>& min() const noexcept { return s_.min; }
  const std::vector<float>& max() const noexcept { return s_.max; }
  std::int64_t count() const noexcept { return s_.count; }
  std::int64_t batches() const noexcept { return s_.batches; }
  const lowbit::granularity& granularity() const noexcept { return s_.g; }
  void reset() noexcept {
    s_.min.clear();
    s_.max.clear();
    s_.count = 0;
    s_.batches = 0;
  }

 private:
  float c_;
  detail::range_state s_;
};

/// Clips to a percentile of the observed data (see the file comment for the method).
class percentile_observer {
 public:
  explicit percentile_observer(double percentile = 99.99, lowbit::granularity g = per_tensor{})
      : p_(percentile), g_(g) {
    if (!(percentile >= 50.0 && percentile <= 100.0))
      detail::fail("percentile_observer: percentile must be in [50, 100], got ", percentile);
    detail::check_granularity(g, "percentile_observer");
  }

  void observe(tensor_view<const float> x) {
    constexpr const char* who = "percentile_observer::observe";
    if (x.numel() == 0) return;
    const detail::segmentation s = detail::make_segmentation(x.shape, g_, who);
    detail::check_segment_count(s, sketches_.size(), who);
    std::vector<float> bmin, bmax;
    detail::scan_minmax(x, s, who, bmin, bmax);  // validates every element
    // (segment << 32 | key), sorted: each segment's keys become one ascending run.
    std::vector<std::uint64_t> tagged;
    tagged.reserve(static_cast<std::size_t>(x.numel()));
    detail::for_each_run(
        x, s, [&](std::int64_t seg, const float* p, std::int64_t st, std::int64_t n, std::int64_t) {
          const auto hi = static_cast<std::uint64_t>(seg) << 32;
          for (std::int64_t k = 0; k < n; ++k)
            tagged.push_back(hi | detail::quantile_sketch::key_of(p[k * st]));
        });
    std::sort(tagged.begin(), tagged.end());
    if (sketches_.empty()) sketches_.resize(static_cast<std::size_t>(s.count));
    std::vector<std::uint32_t> keys;
    std::size_t a = 0;
    while (a < tagged.size()) {
      const std::uint64_t seg = tagged[a] >> 32;
      keys.clear();
      for (; a < tagged.size() && (tagged[a] >> 32) == seg; ++a)
        keys.push_back(static_cast<std::uint32_t>(tagged[a]));
      auto& sk = sketches_[static_cast<std::size_t>(seg)];
      sk.merge(keys.data(), keys.size());
      sk.min = std::min(sk.min, bmin[static_cast<std::size_t>(seg)]);
      sk.max = std::max(sk.max, bmax[static_cast<std::size_t>(seg)]);
    }
    count_ += x.numel();
    ++batches_;
  }

  /// The clipping range of each segment for scheme `s`: symmetric [-t, t] with t the
  /// percentile of |x|; affine [P(100 - p), P(p)] of x.
  std::pair<std::vector<float>, std::vector<float>> ranges(lowbit::scheme s) const {
    if (batches_ == 0) detail::fail_no_data("percentile_observer::ranges");
    const double q = p_ / 100.0;
    std::vector<float> mins(sketches_.size()), maxs(sketches_.size());
    for (std::size_t i = 0; i < sketches_.size(); ++i) {
      const auto& sk = sketches_[i];
      if (s == lowbit::scheme::symmetric) {
        const float amax = std::max(-sk.min, sk.max);
        const float t = std::min(static_cast<float>(sk.abs_quantile(q)), amax);
        mins[i] = -t;
        maxs[i] = t;
      } else {
        mins[i] = std::max(static_cast<float>(sk.quantile(1.0 - q)), sk.min);
        maxs[i] = std::min(static_cast<float>(sk.quantile(q)), sk.max);
      }
    }
    return {std::move(mins), std::move(maxs)};
  }

  quant_params compute(const qparams_options& o) const {
    if (batches_ == 0) detail::fail_no_data("percentile_observer::compute");
    const auto r = ranges(o.scheme);
    return detail::qparams_from_ranges(r.first, r.second, o, g_);
  }

  double percentile() const noexcept { return p_; }
  std::int64_t count() const noexcept { return count_; }
  std::int64_t batches() const noexcept { return batches_; }
  const lowbit::granularity& granularity() const noexcept { return g_; }
  void reset() noexcept {
    sketches_.clear();
    count_ = 0;
    batches_ = 0;
  }

 private:
  double p_;
  lowbit::granularity g_;
  std::vector<detail::quantile_sketch> sketches_;
  std::int64_t count_ = 0, batches_ = 0;
};

/// lowbit's histogram_observer by default; torch_1_13 reproduces two torch 1.13 bugs
/// (see the file comment) for bit-exact comparison with that release.
enum class histogram_compat : std::uint8_t { lowbit, torch_1_13 };

/// PyTorch's HistogramObserver: running histogram + L2-error range search. Per tensor.
class histogram_observer {
 public:
  explicit histogram_observer(int bins = 2048, int upsample_rate = 128,
                              histogram_compat compat = histogram_compat::lowbit) {
    if (bins < 1) detail::fail("histogram_observer: bins must be >= 1, got ", bins);
    if (upsample_rate < 1)
      detail::fail("histogram_observer: upsample_rate must be >= 1, got ", upsample_rate);
    h_.bins = bins;
    h_.upsample_rate = upsample_rate;
    h_.torch_1_13 = compat == histogram_compat::torch_1_13;
  }

  void observe(tensor_view<const float> x) {
    if (x.numel() == 0) return;
    float bmin, bmax;
    const std::vector<float> v =
        detail::gather_finite(x, "histogram_observer::observe", bmin, bmax);
    h_.observe(v, bmin, bmax);
    count_ += x.numel();
    ++batches_;
  }

  /// The [min, max] chosen by the L2 search for o's dtype (before choose_qparams).
  std::pair<float, float> search_range(const qparams_options& o) const {
    if (batches_ == 0) detail::fail_no_data("histogram_observer::compute");
    resolve_quant_range(o);  // reject bad options before the search
    return h_.search(std::int64_t{1} << bits(o.type));
  }

  quant_params compute(const qparams_options& o) const {
    const auto r = search_range(o);
    return choose_qparams(r.first, r.second, o);
  }

  /// torch's histogram buffer: `bins` float counts over [min(), max()].
  const std::vector<float>& histogram() const noexcept { return h_.hist; }
  /// torch's min_val / max_val: the histogram's range (+inf / -inf before any data).
  float min() const noexcept { return h_.min; }
  float max() const noexcept { return h_.max; }
  int bins() const noexcept { return static_cast<int>(h_.bins); }
  int upsample_rate() const noexcept { return static_cast<int>(h_.upsample_rate); }
  histogram_compat compat() const noexcept {
    return h_.torch_1_13 ? histogram_compat::torch_1_13 : histogram_compat::lowbit;
  }
  std::int64_t count() const noexcept { return count_; }
  std::int64_t batches() const noexcept { return batches_; }
  void reset() noexcept {
    h_.hist.clear();
    h_.min = INFINITY;
    h_.max = -INFINITY;
    count_ = 0;
    batches_ = 0;
  }

 private:
  detail::torch_histogram h_;
  std::int64_t count_ = 0, batches_ = 0;
};

/// TensorRT's entropy (KL-divergence) calibration. Per tensor.
class entropy_observer {
 public:
  explicit entropy_observer(int bins = 2048) {
    if (bins < 2) detail::fail("entropy_observer: bins must be >= 2, got ", bins);
    h_.bins = bins;
  }

  void observe(tensor_view<const float> x) {
    if (x.numel() == 0) return;
    float bmin, bmax;
    std::vector<float> v = detail::gather_finite(x, "entropy_observer::observe", bmin, bmax);
    for (float& e : v) e = std::fabs(e);
    h_.add(v, std::max(-bmin, bmax));
    min_ = std::min(min_, bmin);
    max_ = std::max(max_, bmax);
    count_ += x.numel();
    ++batches_;
  }

  /// The clipping threshold t on |x| for o's number of levels (see the file comment).
  float threshold(const qparams_options& o) const {
    if (batches_ == 0) detail::fail_no_data("entropy_observer::compute");
    const auto [qmin, qmax] = resolve_quant_range(o);
    const std::int64_t levels = (static_cast<std::int64_t>(qmax) - qmin + 1) / 2;
    if (h_.bins <= levels)
      detail::fail("entropy_observer::compute: bins (", h_.bins, ") must exceed the ", levels,
                   " quantized levels");
    if (h_.amax == 0.0f) return 0.0f;
    const std::int64_t i = detail::kl_argmin(h_.search_bins(), levels);
    if (i < 0) return h_.amax;
    const double w = static_cast<double>(h_.amax) / static_cast<double>(h_.bins);
    return std::min(static_cast<float>((static_cast<double>(i) + 0.5) * w), h_.amax);
  }

  /// [-t, t] (symmetric), or [-t, t] intersected with [min(min, 0), max(max, 0)] (affine).
  std::pair<float, float> range(const qparams_options& o) const {
    const float t = threshold(o);
    if (o.scheme == lowbit::scheme::symmetric) return {-t, t};
    return {std::max(-t, std::min(min_, 0.0f)), std::min(t, std::max(max_, 0.0f))};
  }

  quant_params compute(const qparams_options& o) const {
    const auto r = range(o);
    return choose_qparams(r.first, r.second, o);
  }

  float min() const noexcept { return min_; }  ///< exact data min (+inf before any data)
  float max() const noexcept { return max_; }
  float amax() const noexcept { return h_.amax; }  ///< exact max |x|
  int bins() const noexcept { return static_cast<int>(h_.bins); }
  std::int64_t count() const noexcept { return count_; }
  std::int64_t batches() const noexcept { return batches_; }
  void reset() noexcept {
    const std::int64_t bins = h_.bins;
    h_ = detail::abs_histogram{};
    h_.bins = bins;
    min_ = INFINITY;
    max_ = -INFINITY;
    count_ = 0;
    batches_ = 0;
  }

 private:
  detail::abs_histogram h_;
  float min_ = INFINITY, max_ = -INFINITY;
  std::int64_t count_ = 0, batches_ = 0;
};

/// MSE-optimal clipping for weights (see the file comment): per_tensor,
/// per_channel{axis} or per_group{group_size} (2-D).
inline quant_params choose_qparams_mse(tensor_view<const float> w, const qparams_options& o,
                                       lowbit::granularity g, int grid = 100,
                                       float min_ratio = 0.5f) {
  constexpr const char* who = "choose_qparams_mse";
  if (grid < 1) detail::fail(who, ": grid must be >= 1, got ", grid);
  if (!(min_ratio > 0.0f && min_ratio <= 1.0f))
    detail::fail(who, ": min_ratio must be in (0, 1], got ", min_ratio);
  detail::check_granularity(g, who);
  if (w.numel() == 0) detail::fail(who, ": empty tensor");
  const auto [qmin, qmax] = resolve_quant_range(o);
  const detail::segmentation s = detail::make_segmentation(w.shape, g, who);
  std::vector<float> mins, maxs;
  detail::scan_minmax(w, s, who, mins, maxs);  // validates every element
  std::vector<std::vector<float>> values(static_cast<std::size_t>(s.count));
  detail::for_each_run(
      w, s, [&](std::int64_t seg, const float* p, std::int64_t st, std::int64_t n, std::int64_t) {
        auto& v = values[static_cast<std::size_t>(seg)];
        for (std::int64_t k = 0; k < n; ++k) v.push_back(p[k * st]);
      });
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float lo = mins[i], hi = maxs[i];
    double best = INFINITY;
    for (int k = grid; k >= 0; --k) {  // larger ratios first: ties keep the larger one
      const float r =
          k == grid
              ? 1.0f
              : static_cast<float>(min_ratio + (1.0 - min_ratio) * static_cast<double>(k) / grid);
      const float clo = r * lo, chi = r * hi;
      float scale;
      std::int32_t zp;
      detail::scale_zero_point(clo, chi, o, qmin, qmax, scale, zp);
      const float inv = 1.0f / scale;
      double err = 0.0;
      for (const float x : values[i]) {
        const float d =
            x - detail::dequantize_one(detail::quantize_one(x, inv, zp, qmin, qmax), scale, zp);
        err += static_cast<double>(d) * d;
      }
      if (err < best) {
        best = err;
        mins[i] = clo;
        maxs[i] = chi;
      }
    }
  }
  return detail::qparams_from_ranges(mins, maxs, o, g);
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_CALIBRATE_HPP_
