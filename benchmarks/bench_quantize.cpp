// SPDX-License-Identifier: Apache-2.0
// bench_quantize.cpp: quantize / dequantize / INT4 pack throughput on 64 MiB of
// floats, beside a read-only pass over the same buffer (the bandwidth reference).
//
// Names: quantize/<dtype>/<granularity>/<policy>/<isa>, dequantize/<dtype>/<gran>/<isa>,
// pack/int4/<isa>, memory/read_only. Counter "GB/s" = input bytes per second (1e9),
// so quantize's GB/s divided by memory/read_only's is the fraction of read bandwidth.
// policy: "checked" = the default non-finite check (an extra read pass),
// "saturate" = nonfinite_policy::saturate (one pass).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <lowbit/lowbit.hpp>

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>
#endif

namespace {

constexpr std::int64_t kFloats = 16 * 1024 * 1024;  // 64 MiB
constexpr std::int64_t kCols = 4096;                // rows of 4096 for per-channel/group
constexpr std::int64_t kRows = kFloats / kCols;

const std::vector<float>& input() {
  static const std::vector<float> x = [] {
    std::vector<float> v(static_cast<std::size_t>(kFloats));
    std::mt19937 g(1);
    std::normal_distribution<float> d(0.0f, 1.0f);
    for (auto& e : v) e = d(g);
    return v;
  }();
  return x;
}

void set_counters(benchmark::State& st, double bytes_per_iter) {
  st.counters["GB/s"] = benchmark::Counter(
      bytes_per_iter, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  st.counters["GB/s"].value /= 1e9;
}

#if LOWBIT_HAVE_X86_DISPATCH
LOWBIT_TARGET_ATTR(LOWBIT_TARGET_AVX512)
std::uint64_t read_avx512(const float* p, std::int64_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (std::int64_t i = 0; i + 64 <= n; i += 64) {
    a0 = _mm512_or_si512(a0, _mm512_loadu_si512(p + i));
    a1 = _mm512_or_si512(a1, _mm512_loadu_si512(p + i + 16));
    a2 = _mm512_or_si512(a2, _mm512_loadu_si512(p + i + 32));
    a3 = _mm512_or_si512(a3, _mm512_loadu_si512(p + i + 48));
  }
  alignas(64) std::uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_or_si512(_mm512_or_si512(a0, a1), _mm512_or_si512(a2, a3)));
  std::uint64_t r = 0;
  for (auto v : lanes) r |= v;
  return r;
}
#endif

std::uint64_t read_scalar(const float* p, std::int64_t n) {
  const auto* u = reinterpret_cast<const std::uint64_t*>(p);
  std::uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (std::int64_t i = 0; i + 4 <= n / 2; i += 4) {
    a0 |= u[i], a1 |= u[i + 1], a2 |= u[i + 2], a3 |= u[i + 3];
  }
  return a0 | a1 | a2 | a3;
}

void bm_read(benchmark::State& st) {
  const auto& x = input();
  for (auto _ : st) {
    std::uint64_t r;
#if LOWBIT_HAVE_X86_DISPATCH
    if (lowbit::is_available(lowbit::isa::avx512_vnni)) {
      r = read_avx512(x.data(), kFloats);
    } else {
      r = read_scalar(x.data(), kFloats);
    }
#else
    r = read_scalar(x.data(), kFloats);
#endif
    benchmark::DoNotOptimize(r);
  }
  set_counters(st, kFloats * 4.0);
}

struct isa_scope {
  explicit isa_scope(lowbit::isa i) { lowbit::set_max_isa(i); }
  ~isa_scope() { lowbit::reset_max_isa(); }
};

lowbit::quant_params params_for(lowbit::dtype t, const std::string& gran) {
  const auto& x = input();
  lowbit::tensor_view<const float> v(x.data(), {kRows, kCols});
  const auto o = lowbit::qparams_options::symmetric(t);
  if (gran == "per_tensor") return lowbit::choose_qparams(-4.0f, 4.0f, o);
  if (gran == "per_channel") return lowbit::choose_qparams_per_row(v, o);
  std::vector<float> mn(static_cast<std::size_t>(kRows * kCols / 128), -4.0f), mx(mn.size(), 4.0f);
  return lowbit::choose_qparams(lowbit::span<const float>(mn), lowbit::span<const float>(mx), o,
                                lowbit::per_group{128});
}

void bm_quantize(benchmark::State& st, lowbit::isa i, lowbit::dtype t, std::string gran,
                 lowbit::nonfinite_policy pol) {
  const auto& x = input();
  const auto p = params_for(t, gran);
  std::vector<std::uint8_t> out(lowbit::storage_bytes(t, kFloats));
  lowbit::tensor_view<const float> v(x.data(), {kRows, kCols});
  isa_scope scope(i);
  for (auto _ : st) {
    if (t == lowbit::dtype::int8) {
      lowbit::quantize(
          v, p, lowbit::span<std::int8_t>(reinterpret_cast<std::int8_t*>(out.data()), out.size()),
          {pol});
    } else {
      lowbit::quantize(v, p, lowbit::span<std::uint8_t>(out), {pol});
    }
    benchmark::ClobberMemory();
  }
  set_counters(st, kFloats * 4.0);
}

void bm_dequantize(benchmark::State& st, lowbit::isa i, lowbit::dtype t, std::string gran) {
  const auto& x = input();
  const auto p = params_for(t, gran);
  lowbit::tensor_view<const float> v(x.data(), {kRows, kCols});
  const auto q = lowbit::quantize(v, p);
  std::vector<float> out(static_cast<std::size_t>(kFloats));
  isa_scope scope(i);
  for (auto _ : st) {
    if (t == lowbit::dtype::int8) {
      lowbit::dequantize(lowbit::span<const std::int8_t>(
                             reinterpret_cast<const std::int8_t*>(q.data.data()), q.data.size()),
                         p, lowbit::tensor_view<float>(out.data(), {kRows, kCols}));
    } else {
      lowbit::dequantize(lowbit::span<const std::uint8_t>(q.data), p,
                         lowbit::tensor_view<float>(out.data(), {kRows, kCols}));
    }
    benchmark::ClobberMemory();
  }
  set_counters(st, static_cast<double>(q.data.size()));  // input bytes
}

void bm_pack(benchmark::State& st, lowbit::isa i) {
  std::vector<std::int8_t> v(static_cast<std::size_t>(kFloats));
  for (std::size_t k = 0; k < v.size(); ++k)
    v[k] = static_cast<std::int8_t>(static_cast<int>(k % 16) - 8);
  std::vector<std::uint8_t> out(v.size() / 2);
  isa_scope scope(i);
  for (auto _ : st) {
    lowbit::pack_int4(lowbit::span<const std::int8_t>(v), lowbit::span<std::uint8_t>(out));
    benchmark::ClobberMemory();
  }
  set_counters(st, static_cast<double>(v.size()));
}

const int registered = [] {
  benchmark::RegisterBenchmark("memory/read_only", bm_read)->Unit(benchmark::kMillisecond);
  for (lowbit::isa i : lowbit::available_isas()) {
    if (i == lowbit::isa::avx_vnni || i == lowbit::isa::amx_int8)
      continue;  // same kernels as avx2 / avx512
    const std::string is = lowbit::to_string(i);
    struct cfg {
      lowbit::dtype t;
      const char* gran;
    };
    for (cfg c : {cfg{lowbit::dtype::int8, "per_tensor"}, cfg{lowbit::dtype::int8, "per_channel"},
                  cfg{lowbit::dtype::int4, "per_group128"}}) {
      const std::string gran = c.gran == std::string("per_group128") ? "per_group" : c.gran;
      for (auto pol : {lowbit::nonfinite_policy::error, lowbit::nonfinite_policy::saturate}) {
        const std::string name =
            std::string("quantize/") + lowbit::to_string(c.t) + "/" + c.gran +
            (pol == lowbit::nonfinite_policy::error ? "/checked/" : "/saturate/") + is;
        benchmark::RegisterBenchmark(name.c_str(), bm_quantize, i, c.t, gran, pol)
            ->Unit(benchmark::kMillisecond);
      }
      const std::string dn =
          std::string("dequantize/") + lowbit::to_string(c.t) + "/" + c.gran + "/" + is;
      benchmark::RegisterBenchmark(dn.c_str(), bm_dequantize, i, c.t, gran)
          ->Unit(benchmark::kMillisecond);
    }
    benchmark::RegisterBenchmark(("pack/int4/" + is).c_str(), bm_pack, i)
        ->Unit(benchmark::kMillisecond);
  }
  return 0;
}();

}  // namespace
