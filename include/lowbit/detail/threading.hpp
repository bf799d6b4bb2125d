// SPDX-License-Identifier: Apache-2.0
// detail/threading.hpp: opt-in fork-join over 1..n threads.
//
// parallel_for(count, threads, f) calls f(begin, end) on disjoint contiguous slices
// of [0, count) that cover it, one slice per thread, statically. The split depends
// only on (count, threads), never on timing, and each output element is computed by
// exactly one call: results are identical for any thread count. With OpenMP enabled
// (-fopenmp) it uses an OpenMP parallel region; otherwise std::thread (one thread per
// extra slice, joined before returning). Exceptions must not escape f.
#ifndef LOWBIT_DETAIL_THREADING_HPP_
#define LOWBIT_DETAIL_THREADING_HPP_

#include <cstdint>
#include <thread>
#include <vector>

#include "lowbit/detail/macros.hpp"

#if defined(_OPENMP) && !defined(LOWBIT_NO_OPENMP)
#include <omp.h>
#define LOWBIT_USE_OPENMP 1
#else
#define LOWBIT_USE_OPENMP 0
#endif

LOWBIT_BEGIN_NAMESPACE
namespace detail {

template <class F>
void parallel_for(std::int64_t count, int threads, F&& f) {
  if (count <= 0) return;
  const std::int64_t t = threads < 1 ? 1 : (threads > count ? count : threads);
  const auto slice = [&](std::int64_t i) { f(count * i / t, count * (i + 1) / t); };
  if (t == 1) {
    slice(0);
    return;
  }
#if LOWBIT_USE_OPENMP
#pragma omp parallel for num_threads(static_cast <int>(t)) schedule(static, 1)
  for (std::int64_t i = 0; i < t; ++i) slice(i);
#else
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(t - 1));
  for (std::int64_t i = 1; i < t; ++i) pool.emplace_back(slice, i);
  slice(0);
  for (auto& th : pool) th.join();
#endif
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_THREADING_HPP_
