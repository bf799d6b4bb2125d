// SPDX-License-Identifier: Apache-2.0
// quantized_linear in every mode against the float layer, with error bounds derived
// from the quantization scales; across ISAs; threads; the article's MLP; bad input.
#include <catch2/catch.hpp>

#include "support/random.hpp"

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <vector>

#include "lowbit/layers/linear.hpp"
#include "lowbit/layers/sequential.hpp"
#include "lowbit/reference/gemm.hpp"
#include "support/isa_sweep.hpp"

using Catch::Contains;
using lowbit::matrixf;
using lowbit::quantized_linear;
using lowbit::vectorf;

namespace {

using lowbit_test::randn;

vectorf bias_of(Eigen::Index n, std::uint32_t seed) {
  const matrixf b = randn(1, n, 0.1f, seed);
  return b.row(0).transpose();
}

/// Per-element bound for |y_q - y_f| when activations and weights are rounded to the
/// nearest step: |(x + ex)(w + ew) - x w| <= |x||ew| + |w||ex| + |ex||ew| with
/// |ex| <= sx / 2, |ew| <= sw / 2 (no clipping: the ranges cover the data). sx[m] is
/// the activation scale of row m (0 for f32 activations), sw(n, k) the weight scale
/// of element (n, k). Plus float rounding: 1e-5 * sum |x||w| + 1e-6.
template <class SW>
matrixf error_bound(const matrixf& x, const matrixf& w, const std::vector<float>& sx, SW sw,
                    float extra = 0.0f) {
  matrixf b(x.rows(), w.rows());
  for (Eigen::Index m = 0; m < x.rows(); ++m)
    for (Eigen::Index n = 0; n < w.rows(); ++n) {
      double s = 0, mag = 0;
      for (Eigen::Index k = 0; k < x.cols(); ++k) {
        const double ex = sx[static_cast<std::size_t>(m)] / 2.0, ew = sw(n, k) / 2.0;
        s += std::abs(x(m, k)) * ew + std::abs(w(n, k)) * ex + ex * ew;
        mag += std::abs(x(m, k) * w(n, k));
      }
      b(m, n) = static_cast<float>(s * (1 + 1e-4) + 1e-5 * mag + 1e-6) + extra;
    }
  return b;
}

std::vector<float> row_scales(const matrixf& x) {  // the layer's per-row int8 rule
  const auto p = lowbit::choose_qparams_per_row(
      lowbit::view(x), lowbit::qparams_options::symmetric(lowbit::dtype::int8,
                                                          lowbit::symmetric_convention::narrow));
  return p.scales;
}

void check_within(const matrixf& got, const matrixf& ref, const matrixf& bound) {
  REQUIRE(got.rows() == ref.rows());
  REQUIRE(got.cols() == ref.cols());
  int bad = 0;
  for (Eigen::Index i = 0; i < got.size(); ++i) {
    const float e = std::abs(got.data()[i] - ref.data()[i]);
    if (!(e <= bound.data()[i])) {
      if (++bad <= 3)
        FAIL_CHECK("element " << i << ": |" << got.data()[i] << " - " << ref.data()[i]
                              << "| = " << e << " > bound " << bound.data()[i]);
    }
  }
  CHECK(bad == 0);
}

struct fixture {
  static constexpr Eigen::Index M = 5, N = 37, K = 100;  // K = 100: int4 group 32 pads to 128
  matrixf w = randn(N, K, 0.05f, 1);
  matrixf x = randn(M, K, 1.0f, 2);
  vectorf b = bias_of(N, 3);
  lowbit::float_linear fl{w, b};
  matrixf ref = fl(x);
};

}  // namespace

TEST_CASE("every mode stays within the error bound derived from its scales", "[linear][isa]") {
  fixture f;
  const auto bias = lowbit::view(f.b);
  std::vector<matrixf> first;  // outputs of the first ISA, per mode
  lowbit_test::for_each_isa([&](lowbit::isa is) {
    std::vector<matrixf> outs;
    // dynamic, per-row int8 activations, per-channel int8 weights
    {
      INFO("mode: dynamic per-row");
      const auto l =
          quantized_linear::dynamic(lowbit::view(f.w), bias, {}, lowbit::weight_spec::int8(), is);
      CHECK(l.isa() == is);
      const auto& sw = l.weights().scales();
      const matrixf y = l(f.x);
      check_within(y, f.ref,
                   error_bound(f.x, f.w, row_scales(f.x), [&](Eigen::Index n, Eigen::Index) {
                     return sw[static_cast<std::size_t>(n)];
                   }));
      outs.push_back(y);
    }
    // dynamic, pytorch_compatible (per-tensor uint8, quantize_dynamic's rule), per-tensor weights
    for (bool rr : {false, true}) {
      lowbit::dynamic_options o;
      o.pytorch_compatible = true;
      o.reduce_range = rr;
      const auto l = quantized_linear::dynamic(lowbit::view(f.w), bias, o,
                                               lowbit::weight_spec::int8(lowbit::per_tensor{}), is);
      const auto p = lowbit::choose_qparams_dynamic(f.x.minCoeff(), f.x.maxCoeff(), rr);
      const float sw = l.weights().scales()[0];
      const matrixf y = l(f.x);
      check_within(y, f.ref,
                   error_bound(f.x, f.w, std::vector<float>(fixture::M, p.scales[0]),
                               [&](Eigen::Index, Eigen::Index) { return sw; }));
      // Exactly the reference GEMM with those activation parameters.
      const auto q = lowbit::quantize(lowbit::view(f.x), p);
      const auto wq = l.weights().unpack();
      lowbit::reference::weights rw;
      rw.values = reinterpret_cast<const std::int8_t*>(wq.data.data());
      rw.n = fixture::N;
      rw.k = fixture::K;
      rw.ld = fixture::K;
      rw.scales = wq.params.scales;
      matrixf yr(fixture::M, fixture::N);
      lowbit::reference::gemm(
          lowbit::activations::u8(q.data.data(), fixture::M, fixture::K, fixture::K,
                                  p.zero_points[0], lowbit::span<const float>(p.scales)),
          rw, lowbit::epilogue::f32(bias), lowbit::output(yr.data(), fixture::N));
      CHECK(y == yr);
      outs.push_back(y);
    }
    // dynamic, per-tensor uint8 activations (observer rule), affine int8 weights
    {
      INFO("mode: dynamic affine weights");
      lowbit::dynamic_options o;
      o.activations = lowbit::dynamic_options::granularity::per_tensor;
      const auto l = quantized_linear::dynamic(lowbit::view(f.w), bias, o,
                                               lowbit::weight_spec::int8().affine(), is);
      CHECK(l.weights().has_zero_points());
      const auto p =
          lowbit::choose_qparams(f.x.minCoeff(), f.x.maxCoeff(), lowbit::qparams_options::affine());
      const auto& sw = l.weights().scales();
      check_within(l(f.x), f.ref,
                   error_bound(f.x, f.w, std::vector<float>(fixture::M, p.scales[0]),
                               [&](Eigen::Index n, Eigen::Index) {
                                 return sw[static_cast<std::size_t>(n)];
                               }));
      outs.push_back(l(f.x));
    }
    // w4a8, int4 per group 32 (K = 100 -> zero-padded to 128)
    {
      INFO("mode: w4a8 int4 g32");
      const auto l =
          quantized_linear::w4a8(lowbit::view(f.w), bias, lowbit::weight_spec::int4({32}), is);
      CHECK(l.in_features() == fixture::K);
      CHECK(l.weights().k() == 128);
      const auto& sw = l.weights().scales();
      const auto G = l.weights().groups();
      const matrixf y = l(f.x);
      check_within(y, f.ref,
                   error_bound(f.x, f.w, row_scales(f.x), [&](Eigen::Index n, Eigen::Index k) {
                     return sw[static_cast<std::size_t>(n * G + k / 32)];
                   }));
      outs.push_back(y);
    }
    // static, f32 out, then requantized uint8 out (+ output rounding s_out / 2)
    {
      INFO("mode: static f32 / requantized");
      const auto in =
          lowbit::choose_qparams(f.x.minCoeff(), f.x.maxCoeff(), lowbit::qparams_options::affine());
      const auto out = lowbit::choose_qparams(f.ref.minCoeff() - 0.5f, f.ref.maxCoeff() + 0.5f,
                                              lowbit::qparams_options::affine());
      const auto l = quantized_linear::static_quant(lowbit::view(f.w), bias, in, std::nullopt,
                                                    false, lowbit::weight_spec::int8(), is);
      const auto& sw = l.weights().scales();
      const auto swf = [&](Eigen::Index n, Eigen::Index) {
        return sw[static_cast<std::size_t>(n)];
      };
      const matrixf bound =
          error_bound(f.x, f.w, std::vector<float>(fixture::M, in.scales[0]), swf);
      check_within(l(f.x), f.ref, bound);
      outs.push_back(l(f.x));
      const auto lq = quantized_linear::static_quant(lowbit::view(f.w), bias, in, out, false,
                                                     lowbit::weight_spec::int8(), is);
      // requantizing adds half an output step, plus the bias rounded to the accumulator grid
      const float extra = out.scales[0] * 0.5f * (1 + 1e-4f) +
                          in.scales[0] * *std::max_element(sw.begin(), sw.end()) * 0.5f;
      check_within(lq(f.x), f.ref,
                   error_bound(f.x, f.w, std::vector<float>(fixture::M, in.scales[0]), swf, extra));
      outs.push_back(lq(f.x));
    }
    // weight-only int8 and int4 (f32 activations: no activation error)
    for (bool four : {false, true}) {
      INFO("mode: weight-only " << (four ? "int4 g32" : "int8"));
      const auto ws = four ? lowbit::weight_spec::int4({32}) : lowbit::weight_spec::int8();
      const auto l = quantized_linear::weight_only(lowbit::view(f.w), bias, ws, is);
      const auto& sw = l.weights().scales();
      const auto G = l.weights().groups();
      check_within(l(f.x), f.ref,
                   error_bound(f.x, f.w, std::vector<float>(fixture::M, 0.0f),
                               [&](Eigen::Index n, Eigen::Index k) {
                                 return four ? sw[static_cast<std::size_t>(n * G + k / 32)]
                                             : sw[static_cast<std::size_t>(n)];
                               }));
    }
    // Integer modes compute exact int32 sums and the same float epilogue: identical on every ISA.
    if (first.empty()) {
      first = outs;
    } else {
      REQUIRE(outs.size() == first.size());
      for (std::size_t i = 0; i < outs.size(); ++i) CHECK(outs[i] == first[i]);
    }
  });
}

TEST_CASE("forward is const, thread-safe and independent of the thread count", "[linear]") {
  fixture f;
  const auto l = quantized_linear::dynamic(lowbit::view(f.w), lowbit::view(f.b));
  const matrixf x2 = randn(fixture::M, fixture::K, 1.0f, 9);
  const matrixf y1 = l(f.x), y2 = l(x2);
  CHECK(l(f.x, lowbit::gemm_context{2}) == y1);
  CHECK(l(f.x, lowbit::gemm_context{3}) == y1);
  std::vector<matrixf> a(50), b(50);
  std::thread t1([&] {
    for (auto& y : a) y = l(f.x);
  });
  std::thread t2([&] {
    for (auto& y : b) y = l(x2);
  });
  t1.join();
  t2.join();
  for (const auto& y : a) CHECK(y == y1);
  for (const auto& y : b) CHECK(y == y2);
}

TEST_CASE("memory_bytes counts packed weights, scales, sums and bias", "[linear]") {
  fixture f;
  const auto l8 = quantized_linear::dynamic(lowbit::view(f.w), lowbit::view(f.b));
  // panels of 16 channels x ceil(K/4) rows x 64 bytes; scales + column sums per channel;
  // where -128 is (one offset per panel + 1, one entry per -128)
  const std::size_t panels = (fixture::N + 15) / 16, k4 = (fixture::K + 3) / 4;
  const std::size_t mins = l8.weights().min_entries().size();
  CHECK(l8.weights().min_offsets().size() == panels + 1);
  CHECK(l8.memory_bytes() ==
        panels * k4 * 64 + fixture::N * 4 * 2 + (panels + 1 + mins) * 4 + fixture::N * 4);
  const auto l4 =
      quantized_linear::w4a8(lowbit::view(f.w), lowbit::view(f.b), lowbit::weight_spec::int4({32}));
  // int4: nibble panels, scales [N x groups], per panel and group 16 sums + 16 scales
  const std::size_t groups = 4;  // 128 / 32
  CHECK(l4.memory_bytes() ==
        panels * (128 / 8) * 64 + fixture::N * groups * 4 + panels * groups * 128 + fixture::N * 4);
  {  // at a size where padding does not dominate, int4 (group 32) is smaller than int8
    const matrixf w = randn(64, 512, 0.05f, 4);
    const vectorf b = bias_of(64, 5);
    CHECK(quantized_linear::w4a8(lowbit::view(w), lowbit::view(b), lowbit::weight_spec::int4({32}))
              .memory_bytes() <
          quantized_linear::dynamic(lowbit::view(w), lowbit::view(b)).memory_bytes());
  }
  // int8 is ~1/4 of float plus 8 bytes of scale + sum per channel (K = 100 here)
  CHECK(l8.memory_bytes() * 5 < lowbit::float_linear(f.w, f.b).memory_bytes() * 2);
}

TEST_CASE("the PyTorch article's MLP, dynamic and static, against its float output",
          "[linear][sequential]") {
  const int dims[] = {768, 512, 314, 128, 64};
  lowbit::sequential mlp;
  for (int i = 0; i < 4; ++i) {
    const float s = 1.0f / std::sqrt(static_cast<float>(dims[i]));
    mlp.linear(randn(dims[i + 1], dims[i], s, 10 + i), bias_of(dims[i + 1], 20 + i) * (s / 0.1f));
    mlp.add(i < 3 ? lowbit::activation::relu : lowbit::activation::sigmoid);
  }
  std::vector<matrixf> calib;
  for (int i = 0; i < 8; ++i) calib.push_back(randn(32, 768, 1.0f, 100 + i));
  const matrixf x = randn(4, 768, 1.0f, 7);
  const matrixf ref = mlp(x);
  REQUIRE(ref.minCoeff() > 0.0f);
  REQUIRE(ref.maxCoeff() < 1.0f);
  struct row {
    const char* name;
    lowbit::quantization_config cfg;
    float max_err;
  };
  lowbit::dynamic_options pt;
  pt.pytorch_compatible = true;
  // Sigmoid outputs in (0, 1), slope <= 1/4: a pre-sigmoid error e moves the output by
  // <= e / 4. The bounds are generous multiples of what 8-bit steps on these ranges give.
  for (const row& r :
       {row{"dynamic", lowbit::quantization_config::dynamic_int8(), 0.02f},
        row{"dynamic pytorch", lowbit::quantization_config::dynamic_int8(pt), 0.02f},
        row{"static minmax", lowbit::quantization_config::static_int8(lowbit::calibrator::minmax),
            0.03f},
        row{"static histogram",
            lowbit::quantization_config::static_int8(lowbit::calibrator::histogram), 0.03f}}) {
    INFO(r.name);
    const auto q = mlp.quantize(r.cfg, calib);
    const matrixf y = q(x);
    CHECK((y - ref).cwiseAbs().maxCoeff() < r.max_err);
    CHECK((y - ref).cwiseAbs().mean() < r.max_err / 3);
    CHECK(q.memory_bytes() * 3 < mlp.memory_bytes());
  }
  // Static with uint8 chains: the layers hand uint8 tensors to each other.
  const auto s = mlp.quantize(lowbit::quantization_config::static_int8(), calib);
  int chained = 0;
  for (const auto& l : s.layers())
    if (const auto* ql = std::get_if<quantized_linear>(&l))
      chained += ql->output_params().has_value();
  CHECK(chained == 4);
  CHECK_THROWS_WITH(mlp.quantize(lowbit::quantization_config::static_int8()),
                    Contains("needs calibration batches"));
}

TEST_CASE("layers reject bad input with clear messages", "[linear]") {
  fixture f;
  const auto l = quantized_linear::dynamic(lowbit::view(f.w), lowbit::view(f.b));
  CHECK_THROWS_WITH(l(randn(2, 99, 1.0f, 1)), Contains("row stride 99 < in_features = 100"));
  matrixf bad = f.x;
  bad(1, 3) = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(l(bad), Contains("non-finite value inf at [1, 3]"));
  const auto wo = quantized_linear::weight_only(lowbit::view(f.w), lowbit::view(f.b));
  CHECK_THROWS_WITH(wo(bad), Contains("non-finite value inf at index 103"));
  CHECK_THROWS_WITH(
      quantized_linear::dynamic(lowbit::view(f.w), lowbit::span<const float>(f.b.data(), 3)),
      Contains("bias has 3 entries for out_features = 37"));
  CHECK_THROWS_WITH(quantized_linear::w4a8(lowbit::view(f.w), {}, lowbit::weight_spec::int8()),
                    Contains("w4a8: weights must be int4"));
  CHECK_THROWS_WITH(l.forward_quantized(nullptr, 1, 100, nullptr, 37),
                    Contains("needs static_w8a8 with output params"));
  const auto perch = lowbit::quant_params::tensor(lowbit::dtype::int4, 0.1f, 0);
  CHECK_THROWS_WITH(quantized_linear::static_quant(lowbit::view(f.w), {}, perch),
                    Contains("input params must be uint8 or int8"));
  lowbit::sequential s;
  s.linear(f.w, f.b);
  CHECK_THROWS_WITH(s.linear(randn(4, 36, 1.0f, 1)),
                    Contains("layer 1 expects 36 inputs but the previous layer produces 37"));
}

namespace {
int g_fp32_calls = 0;
void naive_fp32_gemm(std::int64_t m, std::int64_t n, std::int64_t k, const float* x,
                     std::int64_t ldx, const float* w, std::int64_t ldw, float* y, std::int64_t ldy,
                     int /*threads*/) {
  ++g_fp32_calls;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (std::int64_t l = 0; l < k; ++l)
        acc += static_cast<double>(x[i * ldx + l]) * static_cast<double>(w[j * ldw + l]);
      y[i * ldy + j] = static_cast<float>(acc);
    }
}
}  // namespace

TEST_CASE("float_linear runs the float GEMM set_fp32_gemm installs, and says so", "[linear]") {
  fixture f;
  const lowbit::float_linear fl(f.w, f.b);
  const matrixf x = randn(5, fixture::K, 1.0f, 31);
  const matrixf want = fl(x);  // default: Eigen
  CHECK(fl.describe().find("on eigen") != std::string::npos);
  static const lowbit::fp32_gemm_backend naive{&naive_fp32_gemm, "naive double"};
  lowbit::set_fp32_gemm(&naive);
  g_fp32_calls = 0;
  const matrixf got = fl(x);
  CHECK(g_fp32_calls == 1);
  CHECK(fl.describe().find("on naive double") != std::string::npos);
  lowbit::set_fp32_gemm(nullptr);
  CHECK(std::string(lowbit::fp32_gemm().name) == "eigen");
  REQUIRE(got.rows() == want.rows());
  REQUIRE(got.cols() == want.cols());
  // both are x W^T + b of the same floats; the sums differ only in rounding order
  for (Eigen::Index i = 0; i < got.rows(); ++i)
    for (Eigen::Index j = 0; j < got.cols(); ++j)
      CHECK(std::abs(got(i, j) - want(i, j)) <= 1e-4f * (1.0f + std::abs(want(i, j))));
}
