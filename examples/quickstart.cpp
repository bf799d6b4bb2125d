// SPDX-License-Identifier: Apache-2.0
// quickstart.cpp: the README's usage snippet, compiled and run by the test suite.
// Quantizes a [512 x 768] weight matrix three ways and prints size and error.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <lowbit/lowbit.hpp>

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::puts(
        "usage: quickstart\n  Quantizes a random [512 x 768] weight matrix to INT8 per-channel,\n"
        "  INT4 per-group-128 and INT8 per-tensor, and prints bytes and errors.");
    return 0;
  }
  const std::int64_t n = 512, k = 768;  // [out_features x in_features], like torch.nn.Linear
  std::vector<float> w(static_cast<std::size_t>(n * k));
  std::mt19937 rng(42);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (auto& v : w) v = normal(rng);

  // --- the README snippet -----------------------------------------------------------
  lowbit::tensor_view<const float> wv(w.data(), {n, k});
  auto p8 = lowbit::choose_qparams_per_row(
      wv, lowbit::qparams_options::symmetric());      // int8, one scale per row
  auto q8 = lowbit::quantize(wv, p8);                 // 1 byte per weight
  lowbit::minmax_observer obs(lowbit::per_tensor{});  // or calibrate over many batches
  obs.observe(wv);
  auto pt = obs.compute(lowbit::qparams_options::symmetric());
  auto p4 = lowbit::choose_qparams_mse(wv, lowbit::qparams_options::symmetric(lowbit::dtype::int4),
                                       lowbit::per_group{128});  // int4, MSE-optimal clipping
  auto q4 = lowbit::quantize(wv, p4);                            // two weights per byte
  std::vector<float> back = lowbit::dequantize(q4);              // float again
  // ----------------------------------------------------------------------------------

  auto report = [&](const char* name, const lowbit::quantized_tensor& q) {
    const std::vector<float> r = lowbit::dequantize(q);
    double max_err = 0, sum_sq = 0, sum_ref = 0;
    for (std::size_t i = 0; i < w.size(); ++i) {
      const double e = std::abs(double(r[i]) - w[i]);
      max_err = std::max(max_err, e);
      sum_sq += e * e;
      sum_ref += double(w[i]) * w[i];
    }
    const double sqnr = 10 * std::log10(sum_ref / std::max(sum_sq, 1e-30));
    std::printf("| %-26s | %9zu | %10.3g | %8.1f |\n", name,
                q.data.size() + q.params.scales.size() * 4 + q.params.zero_points.size() * 4,
                max_err, sqnr);
  };
  std::printf("lowbit %s, quantize path: %s\n", LOWBIT_VERSION_STRING,
              lowbit::to_string(lowbit::best_isa()));
  std::printf("weights [%lld x %lld], N(0, 0.02)\n\n", static_cast<long long>(n),
              static_cast<long long>(k));
  std::printf("| %-26s | %9s | %10s | %8s |\n", "format", "bytes", "max |err|", "SQNR dB");
  std::printf("|%s|%s|%s|%s|\n", "----------------------------", "-----------", "------------",
              "----------");
  std::printf("| %-26s | %9zu | %10s | %8s |\n", "fp32", w.size() * 4, "0", "inf");
  report("int8 per-channel (symm.)", q8);
  report("int8 per-tensor (min-max)", lowbit::quantize(wv, pt));
  report("int4 per-group 128 (MSE)", q4);
  return back.size() == w.size() ? 0 : 1;
}
