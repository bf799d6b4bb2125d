// SPDX-License-Identifier: Apache-2.0
// detail/calib/quantile_sketch.hpp: exact counts of float32 values in log-linear bins, the
// store behind percentile_observer (calibrate.hpp states the error bound).
//
// A value's bin is its float32 bit pattern with the low 12 mantissa bits dropped:
// sign, exponent and the top 11 mantissa bits, i.e. 2048 bins per power of two, each
// [lo, hi) with hi - lo <= 2^-11 * lo for normal numbers. Keys are ordered like the
// values (negative magnitudes mirrored below 2^19), and only keys that occur are
// stored, as a sorted (key, count) list, so memory is at most min(distinct keys,
// elements seen) and never depends on the range. Counting is exact and
// order-independent: observing the data in any split gives the same sketch.
#ifndef LOWBIT_DETAIL_CALIB_QUANTILE_SKETCH_HPP_
#define LOWBIT_DETAIL_CALIB_QUANTILE_SKETCH_HPP_

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

struct quantile_sketch {
  static constexpr int kDropBits = 12;
  static constexpr std::uint32_t kMid = 1u << 19;  ///< key of +0; negatives below

  std::vector<std::uint32_t> keys;  ///< ascending
  std::vector<std::uint64_t> counts;
  std::uint64_t total = 0;
  float min = INFINITY;  ///< exact extremes
  float max = -INFINITY;

  static std::uint32_t magnitude_key(float v) noexcept {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return (bits & 0x7fffffffu) >> kDropBits;
  }
  /// Signed, order-preserving key of a finite value (-0 counts as +0).
  static std::uint32_t key_of(float v) noexcept {
    if (v == 0.0f) return kMid;
    const std::uint32_t m = magnitude_key(v);
    return v < 0.0f ? kMid - 1 - m : kMid + m;
  }
  /// [lo, hi) of the magnitudes in magnitude bin m.
  static void magnitude_bounds(std::uint32_t m, double& lo, double& hi) noexcept {
    const std::uint32_t a = m << kDropBits, b = (m + 1) << kDropBits;
    float flo, fhi;
    std::memcpy(&flo, &a, sizeof flo);
    std::memcpy(&fhi, &b, sizeof fhi);
    lo = flo;
    hi = b >= 0x7f800000u ? static_cast<double>(FLT_MAX) : static_cast<double>(fhi);
  }

  /// Merges `sorted_keys` (ascending, duplicates allowed) into the sketch.
  void merge(const std::uint32_t* sorted_keys, std::size_t n) {
    std::vector<std::uint32_t> k2;
    std::vector<std::uint64_t> c2;
    k2.reserve(keys.size() + n);
    c2.reserve(keys.size() + n);
    std::size_t a = 0, b = 0;
    while (a < keys.size() || b < n) {
      std::uint32_t key;
      std::uint64_t cnt = 0;
      if (b == n || (a < keys.size() && keys[a] <= sorted_keys[b])) {
        key = keys[a];
        cnt = counts[a++];
      } else {
        key = sorted_keys[b];
      }
      while (b < n && sorted_keys[b] == key) {
        ++cnt;
        ++b;
      }
      k2.push_back(key);
      c2.push_back(cnt);
    }
    total += n;
    keys.swap(k2);
    counts.swap(c2);
  }

  /// The j-th smallest value (0-based) of a (bin, count) list over values, where
  /// bounds(bin, lo, hi) gives the bin's value interval: the rank is placed
  /// uniformly inside its bin.
  template <class Bounds>
  static double order_stat(const std::vector<std::uint32_t>& bin,
                           const std::vector<std::uint64_t>& cnt, std::uint64_t j, Bounds bounds) {
    std::uint64_t before = 0;
    for (std::size_t k = 0; k < bin.size(); ++k) {
      if (j < before + cnt[k]) {
        double lo, hi;
        bounds(bin[k], lo, hi);
        const double f = (static_cast<double>(j - before) + 0.5) / static_cast<double>(cnt[k]);
        return lo + f * (hi - lo);
      }
      before += cnt[k];
    }
    return 0.0;  // unreachable for j < total
  }

  /// numpy's default ('linear') quantile: h = (n - 1) q, interpolate between order
  /// statistics floor(h) and floor(h) + 1. Estimates are clamped to [lo, hi], the
  /// exact extremes; the largest rank is hi, the smallest is lo when `lo_exact`.
  template <class Stat>
  static double linear_quantile(std::uint64_t n, double q, double lo, double hi, bool lo_exact,
                                Stat stat) {
    const double h = static_cast<double>(n - 1) * q;
    const auto j = static_cast<std::uint64_t>(std::floor(h));
    const double g = h - static_cast<double>(j);
    auto at = [&](std::uint64_t r) {
      if (r == 0 && lo_exact) return lo;
      if (r >= n - 1) return hi;
      return std::min(std::max(stat(r), lo), hi);
    };
    const double v = at(j);
    if (g == 0.0 || j + 1 >= n) return v;
    return v + g * (at(j + 1) - v);
  }

  /// Quantile q in [0, 1] of the signed values.
  double quantile(double q) const {
    auto bounds = [](std::uint32_t key, double& lo, double& hi) {
      if (key >= kMid) {
        magnitude_bounds(key - kMid, lo, hi);
      } else {
        double mlo, mhi;
        magnitude_bounds(kMid - 1 - key, mlo, mhi);
        lo = -mhi;
        hi = -mlo;
      }
    };
    return linear_quantile(total, q, min, max, true,
                           [&](std::uint64_t r) { return order_stat(keys, counts, r, bounds); });
  }

  /// Quantile q in [0, 1] of |values|.
  double abs_quantile(double q) const {
    // Fold: negative keys descend in magnitude, positive keys ascend.
    std::vector<std::uint32_t> mk;
    std::vector<std::uint64_t> mc;
    mk.reserve(keys.size());
    mc.reserve(keys.size());
    const auto first_pos =
        static_cast<std::size_t>(std::lower_bound(keys.begin(), keys.end(), kMid) - keys.begin());
    std::size_t neg = first_pos, pos = first_pos;  // neg walks down, pos walks up
    while (neg > 0 || pos < keys.size()) {
      const bool take_neg = neg > 0;
      const bool take_pos = pos < keys.size();
      const std::uint32_t mn = take_neg ? kMid - 1 - keys[neg - 1] : 0;
      const std::uint32_t mp = take_pos ? keys[pos] - kMid : 0;
      std::uint32_t m;
      std::uint64_t c = 0;
      if (take_neg && (!take_pos || mn <= mp)) {
        m = mn;
        c += counts[--neg];
        if (take_pos && mp == m) c += counts[pos++];
      } else {
        m = mp;
        c += counts[pos++];
      }
      mk.push_back(m);
      mc.push_back(c);
    }
    const double amax = std::max(-static_cast<double>(min), static_cast<double>(max));
    // min |x| is known exactly only for one-sided data; otherwise 0 is a lower bound.
    const bool one_sided = min >= 0.0f || max <= 0.0f;
    const double amin =
        min >= 0.0f ? static_cast<double>(min) : (max <= 0.0f ? -static_cast<double>(max) : 0.0);
    return linear_quantile(total, q, amin, amax, one_sided, [&](std::uint64_t r) {
      return order_stat(mk, mc, r, magnitude_bounds);
    });
  }
};

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_CALIB_QUANTILE_SKETCH_HPP_
