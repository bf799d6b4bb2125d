// SPDX-License-Identifier: Apache-2.0
// detail/core/threading.hpp: opt-in fork-join over 1..n threads.
//
// parallel_for(count, threads, f) calls f(begin, end) on disjoint contiguous slices
// of [0, count) that cover it, one slice per thread, statically. The split depends
// only on (count, threads), never on timing, and each output element is computed by
// exactly one call: results are identical for any thread count.
//
// Who runs the slices: with OpenMP enabled (-fopenmp) an OpenMP parallel region;
// otherwise a process-wide pool of persistent std::threads (created on first use,
// grown to the largest thread count asked for, parked on a condition variable), with
// slice 0 on the calling thread. Starting threads per call would cost tens of
// microseconds, more than a small layer's whole GEMM. The pool runs one job at a
// time; a caller that finds it busy (another thread's GEMM) falls back to fresh
// std::threads, so concurrent callers never wait on each other. After fork(), the
// child creates its own pool (the parent's workers do not exist there). Exceptions
// must not escape f.
#ifndef LOWBIT_DETAIL_CORE_THREADING_HPP_
#define LOWBIT_DETAIL_CORE_THREADING_HPP_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "lowbit/detail/core/macros.hpp"

#if defined(_OPENMP) && !defined(LOWBIT_NO_OPENMP)
#include <omp.h>
#define LOWBIT_USE_OPENMP 1
#else
#define LOWBIT_USE_OPENMP 0
#endif

#if LOWBIT_OS_LINUX || defined(__APPLE__)
#include <unistd.h>
#define LOWBIT_HAVE_GETPID 1
#else
#define LOWBIT_HAVE_GETPID 0
#endif

LOWBIT_BEGIN_NAMESPACE
namespace detail {

class thread_pool {
 public:
  /// The pool of this process (a new one in a forked child; the parent's is leaked
  /// there on purpose: its threads do not exist in the child).
  static thread_pool& instance() {
#if LOWBIT_HAVE_GETPID
    static std::mutex mu;
    static thread_pool* pool = nullptr;
    static pid_t owner = 0;
    std::lock_guard<std::mutex> lock(mu);
    if (pool == nullptr || owner != ::getpid()) {
      pool = new thread_pool();  // lives until exit: workers are joined by no one
      owner = ::getpid();
    }
    return *pool;
#else
    static thread_pool* pool = new thread_pool();
    return *pool;
#endif
  }

  /// Runs job(i) for i in [0, n): i = 0 on the caller, the rest on workers. Returns
  /// false (running nothing) if the pool is busy with another caller's job.
  bool try_run(int n, const std::function<void(int)>& job) {
    std::unique_lock<std::mutex> call(call_mu_, std::try_to_lock);
    if (!call.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      while (static_cast<int>(workers_.size()) < n - 1) {
        const int id = static_cast<int>(workers_.size());
        workers_.emplace_back([this, id] { work(id); });
        workers_.back().detach();
      }
      job_ = &job;
      active_ = n;
      remaining_ = n - 1;
      left_.store(n - 1, std::memory_order_relaxed);
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    wake_.notify_all();
    job(0);
    // The same short spin for the caller before it sleeps on done_.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    while (left_.load(std::memory_order_acquire) != 0 && std::chrono::steady_clock::now() < until)
      std::this_thread::yield();
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [&] { return remaining_ == 0; });
    job_ = nullptr;
    return true;
  }

 private:
  thread_pool() = default;

  void work(int id) {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      // Spin briefly before parking: a condition-variable wake-up costs ~50 us on
      // virtual machines, more than a small layer's GEMM; back-to-back calls (one
      // per layer of a decode step) find the worker still spinning.
      if (generation_ == seen) {
        lock.unlock();
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
        while (published_.load(std::memory_order_acquire) == seen &&
               std::chrono::steady_clock::now() < until) {
          std::this_thread::yield();
        }
        lock.lock();
      }
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (id + 1 >= active_) continue;
      const std::function<void(int)>* job = job_;
      lock.unlock();
      (*job)(id + 1);
      lock.lock();
      left_.fetch_sub(1, std::memory_order_release);
      if (--remaining_ == 0) done_.notify_one();
    }
  }

  std::mutex call_mu_;  // one job at a time
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;  // detached; kept for their count
  const std::function<void(int)>* job_ = nullptr;
  int active_ = 0, remaining_ = 0;
  std::uint64_t generation_ = 0;
  std::atomic<std::uint64_t> published_{0};  // generation_, readable without the mutex
  std::atomic<int> left_{0};                 // remaining_, readable without the mutex
};

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
  const std::function<void(int)> job = [&](int i) { slice(i); };
  if (thread_pool::instance().try_run(static_cast<int>(t), job)) return;
  std::vector<std::thread> pool;  // the pool is busy: fresh threads for this call
  std::int64_t started = 1;
  try {
    pool.reserve(static_cast<std::size_t>(t - 1));
    for (; started < t; ++started) pool.emplace_back(slice, started);
  } catch (...) {  // no more threads (std::system_error): the caller runs the rest
  }
  for (std::int64_t i = started; i < t; ++i) slice(i);
  slice(0);
  for (auto& th : pool) th.join();
#endif
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_CORE_THREADING_HPP_
