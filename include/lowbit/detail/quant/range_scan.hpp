// SPDX-License-Identifier: Apache-2.0
// detail/quant/range_scan.hpp: min, max and "is everything finite" of a float run, in one read.
//
// Eight independent lanes (the compiler vectorizes the fixed-width inner loop at any
// baseline: SSE2, AVX2, NEON). Non-finite values are detected without a branch:
// v * 0 is 0 for finite v and NaN for NaN or +-Inf, so a lane's `poison` sum stays 0
// exactly while every value it saw was finite. Min and max are exact whatever the
// order (only the sign of a zero result may differ, which no caller depends on: a
// zero range endpoint is clamped against 0 by every quantization rule).
#ifndef LOWBIT_DETAIL_QUANT_RANGE_SCAN_HPP_
#define LOWBIT_DETAIL_QUANT_RANGE_SCAN_HPP_

#include <cmath>
#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// Range of x[0, n) (n >= 1) into mn, mx. Returns the index of the first NaN/Inf, or
/// -1 when all are finite (mn, mx are then exact).
inline std::int64_t scan_range(const float* x, std::int64_t n, float& mn, float& mx) noexcept {
  constexpr int L = 8;
  float lo[L], hi[L], poison[L];
  for (int j = 0; j < L; ++j) {
    lo[j] = hi[j] = x[0];
    poison[j] = 0.0f;
  }
  std::int64_t i = 0;
  for (; i + L <= n; i += L)
    for (int j = 0; j < L; ++j) {
      const float v = x[i + j];
      lo[j] = v < lo[j] ? v : lo[j];
      hi[j] = v > hi[j] ? v : hi[j];
      poison[j] = poison[j] + v * 0.0f;
    }
  for (; i < n; ++i) {
    const float v = x[i];
    lo[0] = v < lo[0] ? v : lo[0];
    hi[0] = v > hi[0] ? v : hi[0];
    poison[0] = poison[0] + v * 0.0f;
  }
  bool finite = true;
  mn = lo[0];
  mx = hi[0];
  for (int j = 0; j < L; ++j) {
    finite = finite && poison[j] == 0.0f;
    mn = lo[j] < mn ? lo[j] : mn;
    mx = hi[j] > mx ? hi[j] : mx;
  }
  if (finite) return -1;
  for (std::int64_t k = 0; k < n; ++k)
    if (!std::isfinite(x[k])) return k;
  return -1;  // unreachable: some lane saw a non-finite value
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_QUANT_RANGE_SCAN_HPP_
