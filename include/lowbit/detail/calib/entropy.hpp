// SPDX-License-Identifier: Apache-2.0
// detail/calib/entropy.hpp: the |x| histogram and the KL-divergence threshold search of
// TensorRT's entropy calibration (entropy_observer in calibrate.hpp documents the
// semantics).
//
// Accumulation: |x| is counted in kFine = 16 times more bins than the search uses,
// over [0, R). R starts at the first non-zero batch's max|x| and doubles when a batch
// exceeds it, merging pairs of fine bins: exact, because the bins stay aligned at 0.
// At search time the fine bins are redistributed onto `bins` bins over [0, amax]
// (amax the exact max|x| seen), assuming a uniform density inside each fine bin.
// That assumption moves a count by less than one fine bin, R / (16 * bins) <=
// amax / (8 * bins): under 1/8 of a search bin. When R == amax (no range growth
// after the first batch) the redistribution is an exact 16:1 merge.
#ifndef LOWBIT_DETAIL_CALIB_ENTROPY_HPP_
#define LOWBIT_DETAIL_CALIB_ENTROPY_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

struct abs_histogram {
  static constexpr std::int64_t kFine = 16;
  std::int64_t bins = 2048;
  std::vector<double> fine;  ///< bins * kFine counts over [0, range)
  double range = 0.0;        ///< 0 while only zeros were seen
  double zeros = 0.0;        ///< zeros counted while range == 0
  float amax = 0.0f;         ///< exact max |x|

  std::int64_t fine_bins() const noexcept { return bins * kFine; }

  /// Adds a finite batch of magnitudes whose maximum is `batch_amax`.
  void add(const std::vector<float>& mags, float batch_amax) {
    if (fine.empty()) fine.assign(static_cast<std::size_t>(fine_bins()), 0.0);
    if (batch_amax > 0.0f) {
      if (range == 0.0) {
        range = batch_amax;
        fine[0] += zeros;
        zeros = 0.0;
      }
      while (range < static_cast<double>(batch_amax)) grow();
    }
    amax = std::max(amax, batch_amax);
    if (range == 0.0) {
      zeros += static_cast<double>(mags.size());
      return;
    }
    const std::int64_t nf = fine_bins();
    const double per = static_cast<double>(nf) / range;
    for (const float a : mags) {
      auto k = static_cast<std::int64_t>(static_cast<double>(a) * per);
      k = std::min(k, nf - 1);
      fine[static_cast<std::size_t>(k)] += 1.0;
    }
  }

  /// Doubles the range: fine bin k takes the counts of old bins 2k and 2k + 1.
  void grow() {
    const std::size_t n = fine.size();
    for (std::size_t k = 0; k < n / 2; ++k) fine[k] = fine[2 * k] + fine[2 * k + 1];
    std::fill(fine.begin() + static_cast<std::ptrdiff_t>(n / 2), fine.end(), 0.0);
    range *= 2.0;
  }

  /// `bins` counts over [0, amax] (see the file comment).
  std::vector<double> search_bins() const {
    std::vector<double> out(static_cast<std::size_t>(bins), 0.0);
    if (range == 0.0 || amax == 0.0f) return out;
    const std::int64_t nf = fine_bins();
    if (range == static_cast<double>(amax)) {
      for (std::int64_t k = 0; k < nf; ++k)
        out[static_cast<std::size_t>(k / kFine)] += fine[static_cast<std::size_t>(k)];
      return out;
    }
    const double fw = range / static_cast<double>(nf);
    const double w = static_cast<double>(amax) / static_cast<double>(bins);
    for (std::int64_t k = 0; k < nf; ++k) {
      const double c = fine[static_cast<std::size_t>(k)];
      if (c == 0.0) continue;
      const double lo = static_cast<double>(k) * fw;
      const double hi = std::min(static_cast<double>(k + 1) * fw, static_cast<double>(amax));
      if (!(hi > lo)) {  // a fine bin starting at amax holds values equal to amax
        out.back() += c;
        continue;
      }
      // spread c uniformly over [lo, hi) onto the output bins it overlaps
      auto j = std::min(static_cast<std::int64_t>(lo / w), bins - 1);
      double pos = lo;
      while (pos < hi) {
        const double edge =
            j == bins - 1 ? hi : std::max(pos, std::min(hi, static_cast<double>(j + 1) * w));
        out[static_cast<std::size_t>(j)] += c * (edge - pos) / (hi - lo);
        pos = edge;
        ++j;
      }
    }
    return out;
  }
};

/// TensorRT's KL search over a histogram `h` of |x|: for each candidate i in
/// [max(levels, b0 + levels), bins), b0 the first non-empty bin, P = h[0..i) with the
/// outliers sum(h[i..]) added to P[i-1]; Q = h[0..i) merged into `levels` levels
/// (level j takes bins [floor(j*i/levels), floor((j+1)*i/levels))) and expanded
/// back, each level's sum spread evenly over the bins where P is non-zero; minimize
/// KL(P || Q) (both normalized; a bin with P > 0 and Q == 0 makes it +inf). Returns
/// the argmin i (the first on ties), or -1 when every candidate is +inf or none exists.
inline std::int64_t kl_argmin(const std::vector<double>& h, std::int64_t levels) {
  const auto bins = static_cast<std::int64_t>(h.size());
  std::vector<double> suffix(h.size() + 1, 0.0);
  for (std::int64_t k = bins; k-- > 0;)
    suffix[static_cast<std::size_t>(k)] =
        suffix[static_cast<std::size_t>(k + 1)] + h[static_cast<std::size_t>(k)];
  const double total = suffix[0];
  if (!(total > 0.0)) return -1;
  std::int64_t first = 0;
  while (h[static_cast<std::size_t>(first)] == 0.0) ++first;
  std::vector<double> q;
  double best = INFINITY;
  std::int64_t best_i = -1;
  for (std::int64_t i = std::max(levels, first + levels); i < bins; ++i) {
    q.assign(static_cast<std::size_t>(i), 0.0);
    const double outliers = suffix[static_cast<std::size_t>(i)];
    auto p_at = [&](std::int64_t k) {
      return h[static_cast<std::size_t>(k)] + (k == i - 1 ? outliers : 0.0);
    };
    double q_total = 0.0;
    for (std::int64_t j = 0; j < levels; ++j) {
      const std::int64_t b0 = j * i / levels, b1 = (j + 1) * i / levels;
      double sum = 0.0;
      std::int64_t nonzero = 0;
      for (std::int64_t k = b0; k < b1; ++k) {
        sum += h[static_cast<std::size_t>(k)];
        if (p_at(k) != 0.0) ++nonzero;
      }
      if (nonzero == 0) continue;
      const double each = sum / static_cast<double>(nonzero);
      for (std::int64_t k = b0; k < b1; ++k)
        if (p_at(k) != 0.0) q[static_cast<std::size_t>(k)] = each;
      q_total += sum;
    }
    double kl = 0.0;
    for (std::int64_t k = 0; k < i && kl < INFINITY; ++k) {
      const double p = p_at(k);
      if (p == 0.0) continue;
      const double qk = q[static_cast<std::size_t>(k)];
      if (qk == 0.0) {
        kl = INFINITY;
        break;
      }
      const double pn = p / total, qn = qk / q_total;
      kl += pn * std::log(pn / qn);
    }
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  return best_i;
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_CALIB_ENTROPY_HPP_
