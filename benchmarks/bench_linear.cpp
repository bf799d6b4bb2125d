// SPDX-License-Identifier: Apache-2.0
// bench_linear.cpp: quantized_linear end to end (activation quantization + GEMM +
// epilogue), per mode, beside the Eigen fp32 layer in the same binary.
//
// Names (a contract other tools parse):
//   linear/<mode>/<isa>/M:<m>/N:<n>/K:<k>/threads:<t>
//     <mode> in dynamic_w8a8, static_w8a8 (f32 out), weight_only_s8,
//     weight_only_s4g128, w4a8 (int4 per-group 128, int8 per-row activations)
//   linear/float/eigen/M:<m>/N:<n>/K:<k>/threads:<t>
// Counter GOPS = 2 M N K / s / 1e9. Shapes: 4096 x 4096 and GPT-2's (K, N) =
// (768, 2304) attn.c_attn, (768, 768) attn.c_proj, (768, 3072) mlp.c_fc,
// (3072, 768) mlp.c_proj; M in {1, 4, 16, 128}. Every available isa at 1 thread; the
// best isa and Eigen (with OpenMP) also at 2 threads. Run time follows
// --benchmark_min_time.
#include <benchmark/benchmark.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

#include <lowbit/lowbit.hpp>

namespace {

lowbit::matrixf randn(Eigen::Index r, Eigen::Index c, float sd, unsigned seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  lowbit::matrixf m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = d(g);
  return m;
}

/// GOPS from the wall-clock time of the whole timed loop (threads count fully). Not
/// UseRealTime()/MinTime(): google benchmark 1.7 would append them to the names.
void set_gops(benchmark::State& st, double m, double n, double k, double wall_seconds) {
  const double ops = 2.0 * m * n * k * static_cast<double>(st.iterations());
  st.counters["GOPS"] = benchmark::Counter(wall_seconds > 0 ? ops / wall_seconds / 1e9 : 0.0);
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

enum class mode { dynamic_w8a8, static_w8a8, weight_only_s8, weight_only_s4g128, w4a8 };
const char* name(mode m) {
  switch (m) {
    case mode::dynamic_w8a8:
      return "dynamic_w8a8";
    case mode::static_w8a8:
      return "static_w8a8";
    case mode::weight_only_s8:
      return "weight_only_s8";
    case mode::weight_only_s4g128:
      return "weight_only_s4g128";
    case mode::w4a8:
      return "w4a8";
  }
  return "?";
}

lowbit::quantized_linear make(mode md, const lowbit::matrixf& w, const lowbit::vectorf& b,
                              const lowbit::matrixf& x, lowbit::isa is) {
  const auto bias = lowbit::view(b);
  switch (md) {
    case mode::dynamic_w8a8:
      return lowbit::quantized_linear::dynamic(lowbit::view(w), bias, {},
                                               lowbit::weight_spec::int8(), is);
    case mode::static_w8a8: {
      const auto in =
          lowbit::choose_qparams(x.minCoeff(), x.maxCoeff(), lowbit::qparams_options::affine());
      return lowbit::quantized_linear::static_quant(lowbit::view(w), bias, in, std::nullopt, false,
                                                    lowbit::weight_spec::int8(), is);
    }
    case mode::weight_only_s8:
      return lowbit::quantized_linear::weight_only(lowbit::view(w), bias,
                                                   lowbit::weight_spec::int8(), is);
    case mode::weight_only_s4g128:
      return lowbit::quantized_linear::weight_only(lowbit::view(w), bias,
                                                   lowbit::weight_spec::int4({128}), is);
    case mode::w4a8:
      return lowbit::quantized_linear::w4a8(lowbit::view(w), bias, lowbit::weight_spec::int4({128}),
                                            is);
  }
  return {};
}

void bm_quantized(benchmark::State& st, mode md, lowbit::isa is, int m, int n, int k, int threads) {
  const auto w = randn(n, k, 0.02f, 1);
  const lowbit::vectorf b = randn(n, 1, 0.1f, 2).col(0);
  const auto x = randn(m, k, 1.0f, 3);
  const auto layer = make(md, w, b, x, is);
  lowbit::matrixf y(m, n);
  const lowbit::gemm_context ctx{threads};
  const double t0 = now_s();
  for (auto _ : st) {
    layer.forward(x.data(), m, k, y.data(), n, ctx);
    benchmark::ClobberMemory();
  }
  set_gops(st, m, n, k, now_s() - t0);
  st.SetLabel(layer.describe());
}

void bm_float(benchmark::State& st, int m, int n, int k, int threads) {
  Eigen::setNbThreads(threads);
  const lowbit::float_linear layer(randn(n, k, 0.02f, 1), randn(n, 1, 0.1f, 2).col(0));
  const auto x = randn(m, k, 1.0f, 3);
  lowbit::matrixf y(m, n);
  const double t0 = now_s();
  for (auto _ : st) {
    layer.forward(x.data(), m, k, y.data(), n);
    benchmark::ClobberMemory();
  }
  set_gops(st, m, n, k, now_s() - t0);
  st.SetLabel("eigen f32, " + std::to_string(Eigen::nbThreads()) + " thread(s)");
  Eigen::setNbThreads(1);
}

const int registered = [] {
  struct shape {
    int k, n;
  };
  const shape shapes[] = {{4096, 4096}, {768, 2304}, {768, 768}, {768, 3072}, {3072, 768}};
  const auto isas = lowbit::available_isas();
  const lowbit::isa best = lowbit::best_isa();
  // Eigen runs threads only when built with OpenMP.
#if defined(_OPENMP)
  const std::vector<int> float_threads = {1, 2};
#else
  const std::vector<int> float_threads = {1};
#endif
  for (const shape& s : shapes) {
    for (int m : {1, 4, 16, 128}) {
      const std::string dims =
          "/M:" + std::to_string(m) + "/N:" + std::to_string(s.n) + "/K:" + std::to_string(s.k);
      for (int t : float_threads)
        benchmark::RegisterBenchmark(
            ("linear/float/eigen" + dims + "/threads:" + std::to_string(t)).c_str(), bm_float, m,
            s.n, s.k, t);
      for (mode md : {mode::dynamic_w8a8, mode::static_w8a8, mode::weight_only_s8,
                      mode::weight_only_s4g128, mode::w4a8}) {
        for (lowbit::isa is : isas) {
          for (int t : {1, 2}) {
            if (t == 2 && is != best) continue;
            const std::string nm = std::string("linear/") + name(md) + "/" + lowbit::to_string(is) +
                                   dims + "/threads:" + std::to_string(t);
            benchmark::RegisterBenchmark(nm.c_str(), bm_quantized, md, is, m, s.n, s.k, t);
          }
        }
      }
    }
  }
  return 0;
}();

}  // namespace
