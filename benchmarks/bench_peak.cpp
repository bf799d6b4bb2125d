// SPDX-License-Identifier: Apache-2.0
// bench_peak.cpp: the int8 dot-product peak of this core, the ceiling every GEMM
// ratio in docs/BENCHMARKS.md is read against.
//
// Names (a contract, like bench_gemm.cpp's):
//   peak/avx512_vnni   zmm vpdpbusd: 16 int32 lanes x 4 u8*s8 products = 128 ops
//   peak/avx_vnni      ymm VEX vpdpbusd: 64 ops
// each registered only when the ISA is available (lowbit::is_available), with the
// counter "GOPS" (wall clock, like the GEMM benchmarks). The loop runs register-only
// vpdpbusd into 16 independent accumulators (more than latency x throughput on any
// core lowbit targets), so neither memory nor dependency chains limit it.
// peak/amx_int8 is not implemented: no AMX machine was available to verify a tile
// loop on (see docs/BENCHMARKS.md).
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>

#include <lowbit/isa.hpp>

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

namespace {

constexpr std::int64_t kSteps = 1 << 20;  // 16 instructions each

// One vpdpbusd the compiler can neither hoist nor merge: "+v" ties the accumulator.
#define LOWBIT_PEAK_DP(insn, acc, a, w) __asm__ volatile(insn : "+v"(acc) : "v"(a), "v"(w))

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX512_VNNI)
std::int32_t run_avx512_vnni(std::int64_t steps) {
  __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
          c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
  const __m512i a = _mm512_set1_epi32(0x01010101), w = _mm512_set1_epi32(0x01020304);
#define DP(c) LOWBIT_PEAK_DP("vpdpbusd {%2, %1, %0|%0, %1, %2}", c, a, w)
  // clang-format off
  for (std::int64_t i = 0; i < steps; ++i) {
    DP(c0); DP(c1); DP(c2); DP(c3); DP(c4); DP(c5); DP(c6); DP(c7);
    DP(c8); DP(c9); DP(c10); DP(c11); DP(c12); DP(c13); DP(c14); DP(c15);
  }
  // clang-format on
#undef DP
  const __m512i s = _mm512_add_epi32(
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c0, c1), _mm512_add_epi32(c2, c3)),
                       _mm512_add_epi32(_mm512_add_epi32(c4, c5), _mm512_add_epi32(c6, c7))),
      _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(c8, c9), _mm512_add_epi32(c10, c11)),
                       _mm512_add_epi32(_mm512_add_epi32(c12, c13), _mm512_add_epi32(c14, c15))));
  return _mm_cvtsi128_si32(_mm512_castsi512_si128(s));  // lane 0
}
LOWBIT_END_TARGET

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX_VNNI)
std::int32_t run_avx_vnni(std::int64_t steps) {
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
          c7 = c0, c8 = c0, c9 = c0, c10 = c0, c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
  const __m256i a = _mm256_set1_epi32(0x01010101), w = _mm256_set1_epi32(0x01020304);
  // "%{vex%}": the literal {vex} prefix (bare braces are dialect alternatives in asm).
#define DP(c) LOWBIT_PEAK_DP("%{vex%} vpdpbusd {%2, %1, %0|%0, %1, %2}", c, a, w)
  // clang-format off
  for (std::int64_t i = 0; i < steps; ++i) {
    DP(c0); DP(c1); DP(c2); DP(c3); DP(c4); DP(c5); DP(c6); DP(c7);
    DP(c8); DP(c9); DP(c10); DP(c11); DP(c12); DP(c13); DP(c14); DP(c15);
  }
  // clang-format on
#undef DP
  __m256i s = _mm256_add_epi32(c0, c1);
  for (const __m256i& c : {c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15})
    s = _mm256_add_epi32(s, c);
  return _mm_cvtsi128_si32(_mm256_castsi256_si128(s));  // lane 0
}
LOWBIT_END_TARGET

// Every lane of every accumulator gets 1*1 + 1*2 + 1*3 + 1*4 = 10 per instruction.
void bm_peak(benchmark::State& st, std::int32_t (*run)(std::int64_t), double ops_per_insn) {
  const auto start = std::chrono::steady_clock::now();
  std::int32_t got = 0;
  for (auto _ : st) {
    got = run(kSteps);
    benchmark::DoNotOptimize(got);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Lane 0 summed over the 16 accumulators: 160 x kSteps. A loop that skipped work fails.
  if (got != 160 * kSteps) st.SkipWithError("peak loop computed a wrong sum");
  const double ops =
      16.0 * ops_per_insn * static_cast<double>(kSteps) * static_cast<double>(st.iterations());
  st.counters["GOPS"] = benchmark::Counter(s > 0 ? ops / s / 1e9 : 0.0);
}

const int registered = [] {
  if (lowbit::is_available(lowbit::isa::avx512_vnni))
    benchmark::RegisterBenchmark("peak/avx512_vnni", bm_peak, run_avx512_vnni, 128.0)
        ->Unit(benchmark::kMicrosecond);
  if (lowbit::is_available(lowbit::isa::avx_vnni))
    benchmark::RegisterBenchmark("peak/avx_vnni", bm_peak, run_avx_vnni, 64.0)
        ->Unit(benchmark::kMicrosecond);
  return 0;
}();

}  // namespace

#endif  // LOWBIT_HAVE_X86_DISPATCH
