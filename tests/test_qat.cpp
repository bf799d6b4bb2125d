// SPDX-License-Identifier: Apache-2.0
// QAT helpers: fake_quantize is quantize -> dequantize bit for bit, the STE mask at the
// clamp boundaries, LSQ gradients against hand-computed values, fake_quant, and a tiny
// quantization-aware training loop.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/calibrate.hpp"
#include "lowbit/choose_qparams.hpp"
#include "lowbit/detail/quant/walk.hpp"
#include "lowbit/layers/qat.hpp"
#include "lowbit/quantize.hpp"
#include "support/isa_sweep.hpp"

using Catch::Contains;
using lowbit::dtype;
using lowbit::quant_params;
using lowbit::tensor_view;

namespace {

const dtype kTypes[] = {dtype::int8, dtype::uint8, dtype::int4, dtype::uint4};

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

std::int64_t numel(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto e : shape) n *= e;
  return n;
}

/// Affine params of granularity `g` for `shape`: every other pair has a power-of-two
/// scale (so x = (j + 0.5) * s is an exact tie), the rest random scales.
quant_params make_params(dtype t, lowbit::granularity g, const std::vector<std::int64_t>& shape,
                         std::mt19937& r) {
  quant_params p;
  p.type = t;
  p.scheme = lowbit::scheme::affine;
  p.granularity = g;
  p.quant_min = lowbit::dtype_min(t);
  p.quant_max = lowbit::dtype_max(t);
  const std::size_t n = p.expected_count(shape);
  std::uniform_real_distribution<float> s(0.01f, 0.2f);
  std::uniform_int_distribution<int> z(p.quant_min, p.quant_max), e(-6, 1);
  for (std::size_t i = 0; i < n; ++i) {
    p.scales.push_back(i % 2 == 0 ? std::ldexp(1.0f, e(r)) : s(r));
    p.zero_points.push_back(z(r));
  }
  return p;
}

/// Values for a view of `shape` with strides `strides` inside a buffer of `size`
/// floats: random in a range wider than the quantization range, with every third
/// element an exact-or-near tie (j + 0.5) * s of its own pair, j spanning the range.
std::vector<float> make_values(const quant_params& p, const std::vector<std::int64_t>& shape,
                               const std::vector<std::int64_t>& strides, std::size_t size,
                               std::mt19937& r) {
  std::vector<float> buf(size, 12345.0f);
  const lowbit::detail::segmentation layout = lowbit::detail::segmentation_of(p, shape);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  lowbit::detail::for_each_index(
      shape, strides, [&](std::int64_t flat, std::int64_t off, const std::int64_t* idx) {
        const auto k = static_cast<std::size_t>(layout.index(idx));
        const float s = p.scales[k];
        const float span = static_cast<float>(p.quant_max - p.quant_min + 4);
        if (flat % 3 == 0) {
          std::uniform_int_distribution<int> j(p.quant_min - p.zero_points[k] - 2,
                                               p.quant_max - p.zero_points[k] + 1);
          buf[static_cast<std::size_t>(off)] = (static_cast<float>(j(r)) + 0.5f) * s;
        } else {
          buf[static_cast<std::size_t>(off)] = u(r) * span * s;
        }
      });
  return buf;
}

/// lowbit::quantize then lowbit::dequantize through the public API, contiguous output.
std::vector<float> quantize_dequantize(tensor_view<const float> x, const quant_params& p,
                                       lowbit::quantize_options o = {}) {
  const auto q = lowbit::quantize(x, p, o);
  return lowbit::dequantize(q);
}

tensor_view<const float> vec_view(const std::vector<float>& v) {
  return tensor_view<const float>(v.data(), {static_cast<std::int64_t>(v.size())});
}
tensor_view<float> vec_view(std::vector<float>& v) {
  return tensor_view<float>(v.data(), {static_cast<std::int64_t>(v.size())});
}

/// Row-major strides of `shape` with `pad` extra elements at the end of each row.
std::vector<std::int64_t> padded_strides(const std::vector<std::int64_t>& shape, std::int64_t pad,
                                         std::size_t& size) {
  std::vector<std::int64_t> st(shape.size(), 1);
  std::int64_t s = 1;
  for (std::size_t d = shape.size(); d-- > 0;) {
    st[d] = s;
    s *= shape[d] + (d + 1 == shape.size() ? pad : 0);
  }
  size = static_cast<std::size_t>(s);
  return st;
}

/// Float rounding barrier for the test's own closed forms (no FMA contraction).
float r32(float v) {
  volatile float t = v;
  return t;
}

}  // namespace

// ---------------------------------------------------------------------------------
// Forward: bit-identical with quantize -> dequantize
// ---------------------------------------------------------------------------------

TEST_CASE("fake_quantize equals dequantize(quantize(x)) bit for bit", "[qat][isa]") {
  lowbit_test::for_each_isa([](lowbit::isa) {
    std::mt19937 r(2024);
    struct shape_case {
      std::vector<std::int64_t> shape;
      lowbit::granularity gran;
    };
    const std::vector<shape_case> cases = {
        {{5, 12}, lowbit::per_tensor{}},     {{5, 12}, lowbit::per_channel{0}},
        {{5, 12}, lowbit::per_channel{1}},   {{5, 12}, lowbit::per_group{4}},
        {{5, 12}, lowbit::per_group{12}},    {{3, 4, 6}, lowbit::per_channel{0}},
        {{3, 4, 6}, lowbit::per_channel{1}}, {{3, 4, 6}, lowbit::per_channel{-1}},
        {{3, 4, 6}, lowbit::per_tensor{}},   {{37}, lowbit::per_tensor{}},
        {{}, lowbit::per_tensor{}}};
    for (const auto& c : cases) {
      for (dtype t : kTypes) {
        const auto p = make_params(t, c.gran, c.shape, r);
        const std::int64_t n = numel(c.shape);
        // contiguous
        tensor_view<const float> probe(nullptr, c.shape);
        auto x = make_values(p, c.shape, probe.strides, static_cast<std::size_t>(n), r);
        tensor_view<const float> xv(x.data(), c.shape);
        const auto ref = quantize_dequantize(xv, p);
        std::vector<float> y(static_cast<std::size_t>(n), -1.0f);
        lowbit::fake_quantize(xv, p, tensor_view<float>(y.data(), c.shape));
        const auto yv = lowbit::fake_quantize(xv, p);  // vector convenience
        REQUIRE(ref.size() == y.size());
        REQUIRE(yv.size() == y.size());
        for (std::size_t i = 0; i < y.size(); ++i) {
          INFO("dtype " << lowbit::to_string(t) << " granularity " << lowbit::to_string(c.gran.type)
                        << " element " << i << " x " << x[i]);
          REQUIRE(same_bits(y[i], ref[i]));
          REQUIRE(same_bits(yv[i], ref[i]));
        }
        if (c.shape.empty()) continue;
        // padded input view and a differently padded output view
        std::size_t xs = 0, ys = 0;
        const auto xst = padded_strides(c.shape, 3, xs);
        const auto yst = padded_strides(c.shape, 5, ys);
        auto xp = make_values(p, c.shape, xst, xs, r);
        tensor_view<const float> xpv(xp.data(), c.shape, xst);
        const auto refp = quantize_dequantize(xpv, p);
        std::vector<float> yp(ys, -7.0f);
        lowbit::fake_quantize(xpv, p, tensor_view<float>(yp.data(), c.shape, yst));
        std::vector<char> touched(ys, 0);
        lowbit::detail::for_each_index(
            c.shape, yst, [&](std::int64_t flat, std::int64_t off, const std::int64_t*) {
              const auto o = static_cast<std::size_t>(off);
              touched[o] = 1;
              REQUIRE(same_bits(yp[o], refp[static_cast<std::size_t>(flat)]));
            });
        for (std::size_t i = 0; i < ys; ++i)
          if (!touched[i]) REQUIRE(yp[i] == -7.0f);  // padding untouched
      }
    }
  });
}

TEST_CASE("fake_quantize rounds ties half to even like quantize", "[qat]") {
  // s = 0.5, zp = 1: x / s = k + 0.5 exactly; the zero point is added AFTER rounding.
  const auto p = quant_params::tensor(dtype::int8, 0.5f, 1);
  const std::vector<float> x = {0.25f, 0.75f, 1.25f, -0.25f, -0.75f};
  // rne(0.5)=0, rne(1.5)=2, rne(2.5)=2, rne(-0.5)=-0, rne(-1.5)=-2; y = rne(x/s) * s
  const std::vector<float> expect = {0.0f, 1.0f, 1.0f, 0.0f, -1.0f};
  const auto y = lowbit::fake_quantize(vec_view(x), p);
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == expect[i]);
}

TEST_CASE("fake_quantize in place: y may be the same view as x", "[qat]") {
  std::mt19937 r(5);
  for (dtype t : kTypes) {
    for (lowbit::granularity g :
         {lowbit::granularity(lowbit::per_tensor{}), lowbit::granularity(lowbit::per_channel{1}),
          lowbit::granularity(lowbit::per_group{3})}) {
      const std::vector<std::int64_t> shape = {4, 9};
      std::size_t size = 0;
      const auto st = padded_strides(shape, 2, size);
      const auto p = make_params(t, g, shape, r);
      auto buf = make_values(p, shape, st, size, r);
      const auto ref = quantize_dequantize(tensor_view<const float>(buf.data(), shape, st), p);
      tensor_view<float> v(buf.data(), shape, st);
      lowbit::fake_quantize(v, p, v);
      lowbit::detail::for_each_index(
          shape, st, [&](std::int64_t flat, std::int64_t off, const std::int64_t*) {
            REQUIRE(
                same_bits(buf[static_cast<std::size_t>(off)], ref[static_cast<std::size_t>(flat)]));
          });
      // padding between rows untouched
      for (std::int64_t row = 0; row < shape[0]; ++row)
        for (std::int64_t c = shape[1]; c < st[0]; ++c)
          REQUIRE(buf[static_cast<std::size_t>(row * st[0] + c)] == 12345.0f);
    }
  }
}

TEST_CASE("fake_quantize saturate policy equals quantize(saturate) -> dequantize", "[qat]") {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> x = {1.0f, nan, inf, -inf, -3.0f, 0.3f};
  lowbit::quantize_options o;
  o.nonfinite = lowbit::nonfinite_policy::saturate;
  const auto p = quant_params::tensor(dtype::uint8, 0.05f, 100);
  const auto ref = quantize_dequantize(vec_view(x), p, o);
  const auto y = lowbit::fake_quantize(vec_view(x), p, o);
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(same_bits(y[i], ref[i]));
  CHECK(y[1] == 0.0f);                       // NaN -> real 0
  CHECK(y[2] == (255.0f - 100.0f) * 0.05f);  // +Inf -> quant_max
  CHECK(y[3] == (0.0f - 100.0f) * 0.05f);    // -Inf -> quant_min
  // backward under saturate: NaN counts as 0 (inside), +-Inf outside
  std::vector<float> gy(x.size(), 1.0f), gx(x.size(), 9.0f);
  lowbit::fake_quantize_backward(vec_view(x), p, vec_view(gy), vec_view(gx), o);
  CHECK(gx == std::vector<float>{1.0f, 1.0f, 0.0f, 0.0f, 1.0f, 1.0f});
}

// ---------------------------------------------------------------------------------
// STE backward
// ---------------------------------------------------------------------------------

TEST_CASE("STE mask: rounded, unclamped q inside [qmin, qmax] passes the gradient", "[qat]") {
  // int8 affine, s = 0.5 (inv_s = 2 exactly), zp = 3: q = 3 + rne(2x).
  const auto p = quant_params::tensor(dtype::int8, 0.5f, 3);
  struct point {
    float x;
    float q_unclamped;  // by hand
    bool inside;
  };
  const std::vector<point> pts = {
      {-65.5f, -128.0f, true},    // 2x = -131 -> q = qmin: inside
      {-65.25f, -127.0f, true},   // -130.5 ties to -130 -> q = -127
      {-65.75f, -129.0f, false},  // -131.5 ties to EVEN -132 -> q = qmin - 1: outside
      {-66.0f, -129.0f, false},   // qmin - 1
      {62.0f, 127.0f, true},      // q = qmax: inside
      {62.25f, 127.0f, true},     // 124.5 ties to even 124 -> qmax: inside
      {62.5f, 128.0f, false},     // qmax + 1
      {62.75f, 129.0f, false},    // 125.5 ties to 126
      {0.0f, 3.0f, true},
      {1e30f, 0.0f, false},  // far outside (huge values never overflow
                             // an int)
      {-1e30f, 0.0f, false},
      {FLT_MAX, 0.0f, false},
      {-FLT_MAX, 0.0f, false},
  };
  std::vector<float> x, gy, gx(pts.size(), 99.0f);
  for (std::size_t i = 0; i < pts.size(); ++i) {
    x.push_back(pts[i].x);
    gy.push_back(static_cast<float>(i + 1));
  }
  lowbit::fake_quantize_backward(vec_view(x), p, vec_view(gy), vec_view(gx));
  const auto y = lowbit::fake_quantize(vec_view(x), p);
  for (std::size_t i = 0; i < pts.size(); ++i) {
    INFO("x = " << pts[i].x);
    CHECK(gx[i] == (pts[i].inside ? gy[i] : 0.0f));
    if (pts[i].q_unclamped != 0.0f) {
      const float qc = std::min(std::max(pts[i].q_unclamped, -128.0f), 127.0f);
      CHECK(y[i] == (qc - 3.0f) * 0.5f);  // the forward clamps what the mask tested
    }
  }
  // grad_y * mask is a product, as in torch: a negative gradient outside gives -0.0.
  std::vector<float> g1 = {-2.0f}, o1 = {5.0f}, x1 = {-66.0f};
  lowbit::fake_quantize_backward(vec_view(x1), p, vec_view(g1), vec_view(o1));
  CHECK(o1[0] == 0.0f);
  CHECK(std::signbit(o1[0]));
}

TEST_CASE("STE mask per channel and per group uses each element's own pair", "[qat]") {
  // int4 symmetric [-8, 7], per_channel{1} on a [2 x 3]: scales 1, 0.25, 2.
  quant_params p;
  p.type = dtype::int4;
  p.granularity = lowbit::per_channel{1};
  p.scales = {1.0f, 0.25f, 2.0f};
  p.zero_points = {0, 0, 0};
  p.quant_min = -8;
  p.quant_max = 7;
  // col 0: 7.4 -> 7 in, 7.5 -> 8 out; col 1: 1.75 -> 7 in, 1.875 -> 7.5 -> 8 out;
  // col 2: -17 -> -8.5 ties to even -8 in, -19 -> -9.5 -> -10 out.
  const std::vector<float> x = {7.4f, 1.75f, -17.0f, 7.5f, 1.875f, -19.0f};
  const std::vector<float> gy = {1, 2, 3, 4, 5, 6};
  std::vector<float> gx(6, -1.0f);
  lowbit::fake_quantize_backward(tensor_view<const float>(x.data(), {2, 3}), p,
                                 tensor_view<const float>(gy.data(), {2, 3}),
                                 tensor_view<float>(gx.data(), {2, 3}));
  CHECK(gx == std::vector<float>{1, 2, 3, 0, 0, 0});

  // per_group{2} on a [1 x 4]: group 0 scale 1, group 1 scale 0.5; x = 7.6 is outside
  // for group 0 (rne 8) and 3.6 inside for group 1 (7.2 -> 7), 3.8 outside (7.6 -> 8).
  quant_params pg = p;
  pg.granularity = lowbit::per_group{2};
  pg.scales = {1.0f, 0.5f};
  pg.zero_points = {0, 0};
  const std::vector<float> xg = {7.6f, -8.0f, 3.6f, 3.8f}, gyg = {1, 1, 1, 1};
  std::vector<float> gxg(4, -1.0f);
  lowbit::fake_quantize_backward(tensor_view<const float>(xg.data(), {1, 4}), pg,
                                 tensor_view<const float>(gyg.data(), {1, 4}),
                                 tensor_view<float>(gxg.data(), {1, 4}));
  CHECK(gxg == std::vector<float>{0, 1, 1, 0});
}

TEST_CASE("STE backward over strided views, in place on grad_y", "[qat]") {
  std::mt19937 r(9);
  const std::vector<std::int64_t> shape = {6, 8};
  const auto p = make_params(dtype::int4, lowbit::per_channel{0}, shape, r);
  std::size_t size = 0;
  const auto st = padded_strides(shape, 3, size);
  const auto x = make_values(p, shape, st, size, r);
  std::vector<float> g(size);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& v : g) v = u(r);
  const auto g0 = g;
  tensor_view<const float> xv(x.data(), shape, st);
  // out of place into a contiguous grad_x, then in place on grad_y
  std::vector<float> gx(static_cast<std::size_t>(numel(shape)));
  lowbit::fake_quantize_backward(xv, p, tensor_view<const float>(g.data(), shape, st),
                                 tensor_view<float>(gx.data(), shape));
  tensor_view<float> gv(g.data(), shape, st);
  lowbit::fake_quantize_backward(xv, p, gv, gv);
  const lowbit::detail::segmentation layout = lowbit::detail::segmentation_of(p, shape);
  int passed = 0, blocked = 0;
  lowbit::detail::for_each_index(
      shape, st, [&](std::int64_t flat, std::int64_t off, const std::int64_t* idx) {
        const auto k = static_cast<std::size_t>(layout.index(idx));
        const auto o = static_cast<std::size_t>(off);
        // independent statement of the rule: q = zp + nearbyint(x * (1/s)) in [qmin, qmax]
        const float q =
            static_cast<float>(p.zero_points[k]) + std::nearbyint(x[o] * (1.0f / p.scales[k]));
        const bool in =
            q >= static_cast<float>(p.quant_min) && q <= static_cast<float>(p.quant_max);
        (in ? passed : blocked)++;
        REQUIRE(same_bits(g[o], in ? g0[o] : g0[o] * 0.0f));
        REQUIRE(same_bits(gx[static_cast<std::size_t>(flat)], g[o]));
      });
  CHECK(passed > 0);  // the data exercises both sides of the mask
  CHECK(blocked > 0);
}

// ---------------------------------------------------------------------------------
// LSQ
// ---------------------------------------------------------------------------------

TEST_CASE("LSQ gradients: hand-computed closed form, per tensor affine", "[qat]") {
  // int4 affine [-8, 7], s = 0.5 (inv_s = 2), zp = 1: q = 1 + rne(2x).
  //   x      q         case    dS = d(y)/ds * dy           dZ              dX
  //   1.25   1+2=3     inside  ((3-1) - 2.5)*1    = -0.5    0              1
  //   0.75   1+2=3     inside  ((3-1) - 1.5)*2    =  1.0    0              2
  //   3.0    1+6=7     inside  ((7-1) - 6)*(-1)   =  0      0             -1
  //   3.5    1+7=8     above   (7-1)*0.5          =  3.0    -0.5*0.5      0
  //  -4.5    1-9=-8    inside  ((-8-1) + 9)*3     =  0      0              3
  //  -4.75   1-10=-9   below   (-8-1)*1           = -9.0    -1*0.5         0
  //           (-9.5 ties to even -10; torch's learnable kernel, nearbyint(1 - 9.5) = -8,
  //            would call this one inside: deviation 1 in qat.hpp)
  //  -100    far       below   (-8-1)*(-2)        = 18.0    2*0.5          0
  // sums: dS = 12.5, dZ = -0.25 - 0.5 + 1 = 0.25.
  const auto p = quant_params::tensor(dtype::int4, 0.5f, 1);
  const std::vector<float> x = {1.25f, 0.75f, 3.0f, 3.5f, -4.5f, -4.75f, -100.0f};
  const std::vector<float> gy = {1.0f, 2.0f, -1.0f, 0.5f, 3.0f, 1.0f, -2.0f};
  std::vector<float> gx(x.size(), 42.0f);
  auto g = lowbit::fake_quantize_lsq_backward(vec_view(x), p, vec_view(gy), vec_view(gx));
  REQUIRE(g.scale.size() == 1);
  REQUIRE(g.zero_point.size() == 1);
  CHECK(g.scale[0] == 12.5f);
  CHECK(g.zero_point[0] == 0.25f);
  CHECK(gx == std::vector<float>{1.0f, 2.0f, -1.0f, 0.0f, 3.0f, 0.0f, 0.0f});
  // grad_x is exactly the STE backward
  std::vector<float> ste(x.size());
  lowbit::fake_quantize_backward(vec_view(x), p, vec_view(gy), vec_view(ste));
  for (std::size_t i = 0; i < x.size(); ++i) CHECK(same_bits(gx[i], ste[i]));
  // grad_factor multiplies every term (0.5: exact)
  g = lowbit::fake_quantize_lsq_backward(vec_view(x), p, vec_view(gy), vec_view(gx), 0.5f);
  CHECK(g.scale[0] == 6.25f);
  CHECK(g.zero_point[0] == 0.125f);
}

TEST_CASE("LSQ gradients: the paper's symmetric form, per channel", "[qat]") {
  // LSQ (zp = 0): ds = -x/s + round(x/s) inside, -Q_N = qmin below, Q_P = qmax above.
  quant_params p;
  p.type = dtype::int8;
  p.scheme = lowbit::scheme::symmetric;
  p.granularity = lowbit::per_channel{0};
  p.scales = {0.5f, 0.25f};
  p.zero_points = {0, 0};
  // row 0 (s = 0.5):  0.375 -> 0.75 rounds to 1: 1 - 0.75 = 0.25;  100 -> above: 127
  // row 1 (s = 0.25): -0.3125 -> -1.25 rounds to -1: -1 + 1.25 = 0.25; -40 -> below: -128
  const std::vector<float> x = {0.375f, 100.0f, -0.3125f, -40.0f}, gy = {1, 1, 1, 1};
  std::vector<float> gx(4);
  const auto g = lowbit::fake_quantize_lsq_backward(tensor_view<const float>(x.data(), {2, 2}), p,
                                                    tensor_view<const float>(gy.data(), {2, 2}),
                                                    tensor_view<float>(gx.data(), {2, 2}));
  REQUIRE(g.scale.size() == 2);
  CHECK(g.scale[0] == 0.25f + 127.0f);
  CHECK(g.scale[1] == 0.25f - 128.0f);
  CHECK(g.zero_point.empty());  // symmetric: the zero point is not a parameter
  CHECK(gx == std::vector<float>{1, 0, 1, 0});
}

TEST_CASE("LSQ: each pair's gradient is the sum of its per-element terms", "[qat]") {
  std::mt19937 r(77);
  struct shape_case {
    std::vector<std::int64_t> shape;
    lowbit::granularity gran;
  };
  const std::vector<shape_case> cases = {{{4, 16}, lowbit::per_group{8}},
                                         {{3, 5, 4}, lowbit::per_channel{1}},
                                         {{6, 7}, lowbit::per_tensor{}}};
  for (const auto& c : cases) {
    for (dtype t : kTypes) {
      const auto p = make_params(t, c.gran, c.shape, r);
      std::size_t size = 0;
      const auto st = padded_strides(c.shape, 1, size);
      const auto x = make_values(p, c.shape, st, size, r);
      std::vector<float> gy(size);
      std::uniform_real_distribution<float> u(-2.0f, 2.0f);
      for (auto& v : gy) v = u(r);
      std::vector<float> gx(static_cast<std::size_t>(numel(c.shape)));
      const float gf = lowbit::lsq_grad_factor(numel(c.shape), p.quant_max);
      const auto g =
          lowbit::fake_quantize_lsq_backward(tensor_view<const float>(x.data(), c.shape, st), p,
                                             tensor_view<const float>(gy.data(), c.shape, st),
                                             tensor_view<float>(gx.data(), c.shape), gf);
      // Independent per-element terms (torch's expressions, lowbit's q), summed in double in
      // logical order.
      const lowbit::detail::segmentation layout = lowbit::detail::segmentation_of(p, c.shape);
      std::vector<double> ds(p.scales.size(), 0.0), dz(p.scales.size(), 0.0);
      int in = 0, out = 0;
      lowbit::detail::for_each_index(
          c.shape, st, [&](std::int64_t, std::int64_t off, const std::int64_t* idx) {
            const auto k = static_cast<std::size_t>(layout.index(idx));
            const float xv = x[static_cast<std::size_t>(off)];
            const float dy = gy[static_cast<std::size_t>(off)];
            const float s = p.scales[k], inv = 1.0f / s;
            const float zp = static_cast<float>(p.zero_points[k]);
            const float q = zp + std::nearbyint(xv * inv);
            if (q < static_cast<float>(p.quant_min)) {
              ++out;
              ds[k] += r32(r32(dy * static_cast<float>(p.quant_min - p.zero_points[k])) * gf);
              dz[k] += r32(r32(-dy * s) * gf);
            } else if (q > static_cast<float>(p.quant_max)) {
              ++out;
              ds[k] += r32(r32(dy * static_cast<float>(p.quant_max - p.zero_points[k])) * gf);
              dz[k] += r32(r32(-dy * s) * gf);
            } else {
              ++in;
              const float xfq = r32((q - zp) * s);
              ds[k] += r32(r32(r32(dy * r32(xfq - xv)) * inv) * gf);
            }
          });
      CHECK(in > 0);
      CHECK(out > 0);
      REQUIRE(g.scale.size() == p.scales.size());
      REQUIRE(g.zero_point.size() == p.scales.size());
      for (std::size_t k = 0; k < p.scales.size(); ++k) {
        INFO("pair " << k);
        REQUIRE(g.scale[k] == static_cast<float>(ds[k]));
        REQUIRE(g.zero_point[k] == static_cast<float>(dz[k]));
      }
      // grad_factor is linear: 0.25 (a power of two) scales every term exactly
      std::vector<float> gx1(gx.size());
      const auto g1 =
          lowbit::fake_quantize_lsq_backward(tensor_view<const float>(x.data(), c.shape, st), p,
                                             tensor_view<const float>(gy.data(), c.shape, st),
                                             tensor_view<float>(gx1.data(), c.shape), 1.0f);
      const auto g4 =
          lowbit::fake_quantize_lsq_backward(tensor_view<const float>(x.data(), c.shape, st), p,
                                             tensor_view<const float>(gy.data(), c.shape, st),
                                             tensor_view<float>(gx1.data(), c.shape), 0.25f);
      for (std::size_t k = 0; k < p.scales.size(); ++k) REQUIRE(g4.scale[k] == 0.25f * g1.scale[k]);
    }
  }
}

TEST_CASE("lsq_grad_factor is 1 / sqrt(elements * quant_max)", "[qat]") {
  CHECK(lowbit::lsq_grad_factor(100, 4) == 0.05f);
  CHECK(lowbit::lsq_grad_factor(1, 1) == 1.0f);
  CHECK(lowbit::lsq_grad_factor(4096, 7) == static_cast<float>(1.0 / std::sqrt(4096.0 * 7.0)));
  CHECK_THROWS_WITH(lowbit::lsq_grad_factor(0, 7), Contains("elements (0) and quant_max (7)"));
  CHECK_THROWS_WITH(lowbit::lsq_grad_factor(10, 0), Contains("must be > 0"));
}

// ---------------------------------------------------------------------------------
// fake_quant
// ---------------------------------------------------------------------------------

TEST_CASE("fake_quant observes, recomputes params and fake-quantizes like torch FakeQuantize",
          "[qat]") {
  std::mt19937 r(3);
  std::uniform_real_distribution<float> u(-3.0f, 5.0f);
  std::vector<std::vector<float>> batches(3, std::vector<float>(24));
  for (auto& b : batches)
    for (auto& v : b) v = u(r);
  batches[2][7] = 40.0f;  // an outlier the moving average damps

  SECTION("default: uint8 affine, per tensor, moving average 0.01") {
    lowbit::fake_quant fq;
    lowbit::moving_average_minmax_observer ref(0.01f);
    for (const auto& b : batches) {
      const auto y = fq.forward(vec_view(b));
      ref.observe(vec_view(b));
      const auto p = ref.compute(lowbit::qparams_options::affine(dtype::uint8));
      REQUIRE(fq.params().scales == p.scales);
      REQUIRE(fq.params().zero_points == p.zero_points);
      REQUIRE(fq.params().type == dtype::uint8);
      const auto expect = lowbit::fake_quantize(vec_view(b), p);
      for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(same_bits(y[i], expect[i]));
    }
  }
  SECTION("int4 symmetric per channel with a min-max observer") {
    const auto o = lowbit::qparams_options::symmetric(dtype::int4);
    lowbit::fake_quant fq(o, lowbit::per_channel{0}, lowbit::qat_observer::minmax());
    lowbit::minmax_observer ref(lowbit::per_channel{0});
    for (const auto& b : batches) {
      tensor_view<const float> xv(b.data(), {4, 6});
      std::vector<float> y(24);
      fq.forward(xv, tensor_view<float>(y.data(), {4, 6}));
      ref.observe(xv);
      const auto p = ref.compute(o);
      REQUIRE(fq.params().scales == p.scales);
      const auto expect = lowbit::fake_quantize(xv, p);
      for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(same_bits(y[i], expect[i]));
      // backward is the STE with the same params
      std::vector<float> gy(24, 1.0f), gx(24), ste(24);
      fq.backward(xv, tensor_view<const float>(gy.data(), {4, 6}),
                  tensor_view<float>(gx.data(), {4, 6}));
      lowbit::fake_quantize_backward(xv, p, tensor_view<const float>(gy.data(), {4, 6}),
                                     tensor_view<float>(ste.data(), {4, 6}));
      REQUIRE(gx == ste);
    }
  }
  SECTION("observer off freezes params; fake-quant off is the identity") {
    lowbit::fake_quant fq(lowbit::qparams_options::affine(dtype::uint8), lowbit::per_tensor{},
                          lowbit::qat_observer::minmax());
    fq.forward(vec_view(batches[0]));
    const auto frozen = fq.params();
    fq.enable_observer(false);
    CHECK_FALSE(fq.observer_enabled());
    const auto y = fq.forward(vec_view(batches[2]));  // wider range: would change params
    CHECK(fq.params().scales == frozen.scales);
    CHECK(fq.params().zero_points == frozen.zero_points);
    const auto expect = lowbit::fake_quantize(vec_view(batches[2]), frozen);
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(same_bits(y[i], expect[i]));
    CHECK(y[7] != 40.0f);  // the outlier was clipped

    fq.enable_fake_quant(false);
    CHECK_FALSE(fq.fake_quant_enabled());
    const auto id = fq.forward(vec_view(batches[2]));
    CHECK(id == batches[2]);
    std::vector<float> gy(24, -3.0f), gx(24, 0.0f);
    fq.backward(vec_view(batches[2]), vec_view(gy), vec_view(gx));
    CHECK(gx == gy);  // no mask when not fake-quantizing
    const auto lg = fq.backward_lsq(vec_view(batches[2]), vec_view(gy), vec_view(gx));
    CHECK(lg.scale == std::vector<float>{0.0f});
    CHECK(lg.zero_point == std::vector<float>{0.0f});
  }
  SECTION("no parameters before the first observation") {
    lowbit::fake_quant fq;
    CHECK_FALSE(fq.has_params());
    fq.enable_observer(false);
    CHECK_THROWS_WITH(fq.forward(vec_view(batches[0])), Contains("no quantization parameters yet"));
    CHECK_THROWS_WITH(fq.params(), Contains("no quantization parameters yet"));
    fq.enable_observer(true);
    fq.forward(vec_view(batches[0]));
    CHECK(fq.has_params());
    fq.reset();
    CHECK_FALSE(fq.has_params());
  }
}

TEST_CASE("fake_quant learnable parameters: set_scales and set_zero_points", "[qat]") {
  lowbit::fake_quant fq(lowbit::qparams_options::affine(dtype::uint4), lowbit::per_channel{0},
                        lowbit::qat_observer::minmax());
  const std::vector<float> x = {-1.0f, 0.5f, 2.0f, 0.0f, 3.0f, 6.0f};
  tensor_view<const float> xv(x.data(), {2, 3});
  std::vector<float> y(6);
  fq.forward(xv, tensor_view<float>(y.data(), {2, 3}));
  fq.enable_observer(false);  // learning mode: the observer would overwrite updates

  const std::vector<float> s = {0.125f, -1.0f};  // a negative step clamps to eps (torch)
  fq.set_scales(lowbit::span<const float>(s));
  CHECK(fq.params().scales == std::vector<float>{0.125f, FLT_EPSILON});
  const std::vector<float> z = {2.5f, 99.0f};  // half to even; clamped to [0, 15]
  fq.set_zero_points(lowbit::span<const float>(z));
  CHECK(fq.params().zero_points == std::vector<std::int32_t>{2, 15});
  const std::vector<float> z2 = {3.5f, -4.0f};
  fq.set_zero_points(lowbit::span<const float>(z2));
  CHECK(fq.params().zero_points == std::vector<std::int32_t>{4, 0});
  // the next forward uses the updated parameters
  fq.forward(xv, tensor_view<float>(y.data(), {2, 3}));
  const auto expect = lowbit::fake_quantize(xv, fq.params());
  for (std::size_t i = 0; i < 6; ++i) REQUIRE(same_bits(y[i], expect[i]));
  CHECK(y[0] == (0.0f - 4.0f) * 0.125f);  // -1 clamps at q = 0: -0.5

  const std::vector<float> bad = {1.0f};
  CHECK_THROWS_WITH(fq.set_scales(lowbit::span<const float>(bad)),
                    Contains("1 scales given, the parameters have 2"));
  const std::vector<float> nan = {0.1f, std::numeric_limits<float>::quiet_NaN()};
  CHECK_THROWS_WITH(fq.set_scales(lowbit::span<const float>(nan)),
                    Contains("scale[1] = nan is not finite"));
  CHECK(fq.params().scales == std::vector<float>{0.125f, FLT_EPSILON});  // unchanged
  CHECK_THROWS_WITH(fq.set_zero_points(lowbit::span<const float>(nan)),
                    Contains("zero_point[1] = nan is not finite"));

  lowbit::fake_quant sym(lowbit::qparams_options::symmetric(dtype::int8));
  sym.set_params(quant_params::tensor(dtype::int8, 0.1f, 0, lowbit::scheme::symmetric));
  CHECK_THROWS_WITH(sym.set_zero_points(lowbit::span<const float>(bad)),
                    Contains("the symmetric scheme fixes the zero point"));
}

// ---------------------------------------------------------------------------------
// End to end
// ---------------------------------------------------------------------------------

TEST_CASE("QAT end to end: 1-D regression with a fake-quantized int4 weight", "[qat]") {
  // y = w x with w_true = 0.76; the weight is fake-quantized int4 symmetric, s = 0.25
  // (representable: -2.0, -1.75, ..., 1.75). 200 full-batch SGD steps through the STE.
  //
  // Why w_true = 0.76 and lr = 0.1: with the STE the latent weight keeps drifting while
  // wq != w_true, by lr * 2 E[x^2] (w_true - wq) per step. Inside the bin of the nearest
  // level 0.75 that is < 0.001 per step, so the latent weight needs well over 300 steps to
  // cross the bin to the 1.0 level, where the well-known STE oscillation between 0.75 and
  // 1.0 would start. Measured with this data: wq reaches 0.75 at step 23 and would first
  // leave it at step 362; this run stops at 200.
  const float w_true = 0.76f, scale = 0.25f, lr = 0.1f;
  std::mt19937 r(1);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> xs(32), ys(32);
  for (std::size_t i = 0; i < xs.size(); ++i) {
    xs[i] = u(r);
    ys[i] = w_true * xs[i];
  }
  lowbit::fake_quant fq(lowbit::qparams_options::symmetric(dtype::int4));
  fq.enable_observer(false);
  fq.set_params(quant_params::tensor(dtype::int4, scale, 0, lowbit::scheme::symmetric));

  float w = 0.0f, wq = 0.0f;
  const tensor_view<const float> wv(&w, {1});
  std::vector<float> losses, wqs;
  for (int step = 0; step < 200; ++step) {
    fq.forward(wv, tensor_view<float>(&wq, {1}));
    double loss = 0.0, grad = 0.0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const double e = static_cast<double>(wq) * xs[i] - ys[i];
      loss += e * e;
      grad += 2.0 * e * xs[i];
    }
    loss /= static_cast<double>(xs.size());
    const float g_wq = static_cast<float>(grad / static_cast<double>(xs.size()));
    float g_w = 0.0f;
    fq.backward(wv, tensor_view<const float>(&g_wq, {1}), tensor_view<float>(&g_w, {1}));
    REQUIRE(g_w == g_wq);  // |w| stays inside the int4 range: the STE passes it through
    w -= lr * g_w;
    losses.push_back(static_cast<float>(loss));
    wqs.push_back(wq);
  }
  for (std::size_t i = 1; i < losses.size(); ++i) REQUIRE(losses[i] <= losses[i - 1]);
  CHECK(losses.back() < losses.front() / 1000.0f);

  // the nearest representable value, found independently
  float nearest = 0.0f;
  for (int q = -8; q <= 7; ++q)
    if (std::fabs(static_cast<float>(q) * scale - w_true) < std::fabs(nearest - w_true))
      nearest = static_cast<float>(q) * scale;
  REQUIRE(nearest == 0.75f);
  CHECK(wqs.back() == nearest);
  for (std::size_t i = 100; i < wqs.size(); ++i) REQUIRE(wqs[i] == nearest);  // settled
  // and the converted integer model stores q = 3
  const auto qw = lowbit::quantize(wv, fq.params());
  CHECK(qw.value(0) == 3);
}

TEST_CASE("LSQ end to end: learning the step size lowers the quantization error", "[qat]") {
  // Fixed data x ~ U(-1, 1); minimize L(s) = mean (fq(x; s) - x)^2 over the int4 step
  // size, starting far too small (everything beyond +-0.08 clipped). dL/dy = 2 (y - x) / n.
  std::mt19937 r(4);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> x(256);
  for (auto& v : x) v = u(r);
  lowbit::fake_quant fq(lowbit::qparams_options::symmetric(dtype::int4));
  fq.enable_observer(false);
  fq.set_params(quant_params::tensor(dtype::int4, 0.01f, 0, lowbit::scheme::symmetric));
  const float gf = lowbit::lsq_grad_factor(static_cast<std::int64_t>(x.size()), 7);
  auto mse = [&](const std::vector<float>& y) {
    double e = 0.0;
    for (std::size_t i = 0; i < x.size(); ++i)
      e += (static_cast<double>(y[i]) - x[i]) * (y[i] - x[i]);
    return e / static_cast<double>(x.size());
  };
  const double first = mse(fq.forward(vec_view(x)));
  double last = first;
  for (int step = 0; step < 200; ++step) {
    const auto y = fq.forward(vec_view(x));
    last = mse(y);
    std::vector<float> gy(x.size()), gx(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
      gy[i] = 2.0f * (y[i] - x[i]) / static_cast<float>(x.size());
    const auto g = fq.backward_lsq(vec_view(x), vec_view(gy), vec_view(gx), gf);
    REQUIRE(g.zero_point.empty());
    const std::vector<float> s = {fq.params().scales[0] - 0.05f * g.scale[0]};
    fq.set_scales(lowbit::span<const float>(s));
  }
  INFO("mse " << first << " -> " << last << ", scale " << fq.params().scales[0]);
  CHECK(last < first / 100.0);          // measured: 0.289 -> 0.00142
  CHECK(fq.params().scales[0] > 0.1f);  // grew to roughly cover [-1, 1] with 16 levels
  CHECK(fq.params().scales[0] < 0.2f);
}

// ---------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------

TEST_CASE("QAT error messages", "[qat]") {
  const auto p = quant_params::tensor(dtype::int8, 0.1f, 0);
  std::vector<float> x(6, 1.0f), y(6, 7.0f), g(6, 1.0f);
  tensor_view<const float> x23(x.data(), {2, 3});
  tensor_view<float> y32(y.data(), {3, 2});
  tensor_view<float> y23(y.data(), {2, 3});
  CHECK_THROWS_WITH(lowbit::fake_quantize(x23, p, y32),
                    Contains("fake_quantize: y has shape [3, 2] but x has shape [2, 3]"));
  CHECK_THROWS_WITH(
      lowbit::fake_quantize_backward(x23, p, tensor_view<const float>(g.data(), {6}), y23),
      Contains("fake_quantize_backward: grad_y has shape [6] but x has shape [2, 3]"));
  CHECK_THROWS_WITH(
      lowbit::fake_quantize_backward(x23, p, tensor_view<const float>(g.data(), {2, 3}), y32),
      Contains("fake_quantize_backward: grad_x has shape [3, 2] but x has shape [2, 3]"));
  CHECK_THROWS_WITH(
      lowbit::fake_quantize_lsq_backward(x23, p, tensor_view<const float>(g.data(), {2, 3}), y32),
      Contains("fake_quantize_lsq_backward: grad_x has shape [3, 2]"));
  CHECK_THROWS_WITH(lowbit::fake_quantize_lsq_backward(
                        x23, p, tensor_view<const float>(g.data(), {2, 3}), y23, NAN),
                    Contains("grad_factor must be finite"));

  // non-finite x: named by logical index, nothing written (also in place)
  x[4] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(lowbit::fake_quantize(x23, p, y23),
                    Contains("fake_quantize: non-finite value inf at index 4"));
  CHECK(y == std::vector<float>(6, 7.0f));
  x[4] = 1.0f;
  x[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(lowbit::fake_quantize(x23, p, tensor_view<float>(x.data(), {2, 3})),
                    Contains("non-finite value nan at index 5"));
  CHECK(x[0] == 1.0f);  // in place: not overwritten by a failed call
  CHECK_THROWS_WITH(
      lowbit::fake_quantize_backward(x23, p, tensor_view<const float>(g.data(), {2, 3}), y23),
      Contains("fake_quantize_backward: non-finite value nan at index 5"));
  CHECK_THROWS_WITH(
      lowbit::fake_quantize_lsq_backward(x23, p, tensor_view<const float>(g.data(), {2, 3}), y23),
      Contains("fake_quantize_lsq_backward: non-finite value nan at index 5"));
  // strided view: the index is logical, not the memory offset
  std::vector<float> buf(12, 0.0f);
  buf[7] = -std::numeric_limits<float>::infinity();  // element [1][1] of a [2 x 3] with ld 6
  CHECK_THROWS_WITH(lowbit::fake_quantize(lowbit::matrix_view<const float>(buf.data(), 2, 3, 6), p),
                    Contains("non-finite value -inf at index 4"));
  CHECK(y == std::vector<float>(6, 7.0f));

  // params that do not fit the shape, and invalid params
  quant_params pc = p;
  pc.granularity = lowbit::per_channel{0};
  CHECK_THROWS_WITH(lowbit::fake_quantize(x23, pc, y23),
                    Contains("per_channel needs 2 scales for this shape, got 1"));
  quant_params bad = p;
  bad.scales = {0.0f};
  CHECK_THROWS_WITH(lowbit::fake_quantize(x23, bad, y23), Contains("scale[0] = 0 is invalid"));

  // fake_quant: shape mismatch and the observer's non-finite error leave it unchanged
  lowbit::fake_quant fq;
  CHECK_THROWS_WITH(fq.forward(x23, y32),
                    Contains("fake_quant::forward: y has shape [3, 2] but x has shape [2, 3]"));
  CHECK_THROWS_WITH(fq.forward(x23, y23), Contains("non-finite value nan at flat index 5"));
  CHECK_FALSE(fq.has_params());
  CHECK_THROWS_WITH(lowbit::fake_quant(lowbit::qparams_options::symmetric(
                        dtype::uint8, lowbit::symmetric_convention::narrow)),
                    Contains("narrow symmetric convention needs a signed dtype"));
}
