// SPDX-License-Identifier: Apache-2.0
// quantize / dequantize / requantize / INT4 packing: every fast path against
// lowbit::reference, the properties of the affine map, and the error catalogue.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "lowbit/choose_qparams.hpp"
#include "lowbit/pack.hpp"
#include "lowbit/quantize.hpp"
#include "lowbit/reference/quantize.hpp"
#include "lowbit/requantize.hpp"
#include "support/isa_sweep.hpp"

using Catch::Contains;
using lowbit::dtype;
using lowbit::quant_params;
using lowbit::tensor_view;

namespace {

std::vector<float> random_floats(std::size_t n, float lo, float hi, std::uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

const dtype kTypes[] = {dtype::int8, dtype::uint8, dtype::int4, dtype::uint4};

/// Params of `g` granularity for `shape`, with varied scales and zero points.
quant_params make_params(dtype t, lowbit::granularity g, const std::vector<std::int64_t>& shape,
                         std::uint32_t seed) {
  quant_params p;
  p.type = t;
  p.scheme = lowbit::scheme::affine;
  p.granularity = g;
  p.quant_min = lowbit::dtype_min(t);
  p.quant_max = lowbit::dtype_max(t);
  const std::size_t n = p.expected_count(shape);
  std::mt19937 r(seed);
  std::uniform_real_distribution<float> s(0.01f, 0.2f);
  std::uniform_int_distribution<int> z(p.quant_min, p.quant_max);
  for (std::size_t i = 0; i < n; ++i) {
    p.scales.push_back(s(r));
    p.zero_points.push_back(z(r));
  }
  return p;
}

/// quantize through the public API into uint8 storage (int8 via the int8_t overload).
std::vector<std::uint8_t> quantize_api(tensor_view<const float> x, const quant_params& p,
                                       lowbit::quantize_options o = {}) {
  const std::size_t bytes = lowbit::storage_bytes(p.type, static_cast<std::size_t>(x.numel()));
  std::vector<std::uint8_t> out(bytes + 8, 0xCD);  // canary past the end
  if (p.type == dtype::int8) {
    lowbit::quantize(
        x, p, lowbit::span<std::int8_t>(reinterpret_cast<std::int8_t*>(out.data()), bytes), o);
  } else {
    lowbit::quantize(x, p, lowbit::span<std::uint8_t>(out.data(), bytes), o);
  }
  for (std::size_t i = bytes; i < out.size(); ++i) REQUIRE(out[i] == 0xCD);
  out.resize(bytes);
  return out;
}

std::vector<std::uint8_t> quantize_ref(tensor_view<const float> x, const quant_params& p,
                                       bool saturate = false) {
  std::vector<std::uint8_t> out(lowbit::storage_bytes(p.type, static_cast<std::size_t>(x.numel())),
                                0x5A);
  lowbit::reference::quantize(x, p, out.data(), saturate);
  return out;
}

void dequantize_api(const std::vector<std::uint8_t>& q, const quant_params& p,
                    tensor_view<float> out) {
  if (p.type == dtype::int8) {
    lowbit::dequantize(
        lowbit::span<const std::int8_t>(reinterpret_cast<const std::int8_t*>(q.data()), q.size()),
        p, out);
  } else {
    lowbit::dequantize(lowbit::span<const std::uint8_t>(q.data(), q.size()), p, out);
  }
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

}  // namespace

TEST_CASE("quantize/dequantize fast paths equal the reference on lengths 0..1000",
          "[quantize][isa]") {
  lowbit_test::for_each_isa([](lowbit::isa) {
    std::mt19937 g(7);
    for (dtype t : kTypes) {
      for (int n = 0; n <= 1000; n += (n < 70 ? 1 : 37)) {
        // range wider than the quantization range: exercises both clamps
        auto x = random_floats(static_cast<std::size_t>(n), -30.0f, 30.0f, g());
        if (n > 3) x[1] = 0.0f, x[2] = 1e30f, x[3] = -1e30f;
        const auto p = make_params(t, lowbit::per_tensor{}, {n}, g());
        tensor_view<const float> v(x.data(), {n});
        const auto got = quantize_api(v, p);
        REQUIRE(got == quantize_ref(v, p));
        std::vector<float> back(static_cast<std::size_t>(n)), ref(static_cast<std::size_t>(n));
        dequantize_api(got, p, tensor_view<float>(back.data(), {n}));
        lowbit::reference::dequantize(got.data(), p, tensor_view<float>(ref.data(), {n}));
        for (int i = 0; i < n; ++i)
          REQUIRE(same_bits(back[static_cast<std::size_t>(i)], ref[static_cast<std::size_t>(i)]));
      }
    }
  });
}

TEST_CASE("every granularity and strided view equals the reference", "[quantize][isa]") {
  lowbit_test::for_each_isa([](lowbit::isa) {
    std::mt19937 g(11);
    struct shape_case {
      std::vector<std::int64_t> shape;
      lowbit::granularity gran;
    };
    const std::vector<shape_case> cases = {
        {{7, 33}, lowbit::per_channel{0}},    {{7, 33}, lowbit::per_channel{1}},
        {{7, 33}, lowbit::per_channel{-1}},   {{5, 4, 19}, lowbit::per_channel{1}},
        {{5, 4, 19}, lowbit::per_channel{2}}, {{3, 96}, lowbit::per_group{32}},
        {{4, 6}, lowbit::per_group{3}},       {{9, 1}, lowbit::per_channel{0}},
        {{3, 5, 7}, lowbit::per_tensor{}},    {{1, 257}, lowbit::per_group{257}}};
    for (const auto& c : cases) {
      for (dtype t : kTypes) {
        const auto p = make_params(t, c.gran, c.shape, g());
        std::int64_t n = 1;
        for (auto e : c.shape) n *= e;
        // contiguous
        auto x = random_floats(static_cast<std::size_t>(n), -20.0f, 20.0f, g());
        tensor_view<const float> v(x.data(), c.shape);
        REQUIRE(quantize_api(v, p) == quantize_ref(v, p));
        // padded rows (leading dimension > cols): unit inner stride, strided outer
        std::vector<std::int64_t> strides(c.shape.size(), 1);
        const std::int64_t pad = 5;
        std::int64_t s = 1;
        for (std::size_t d = c.shape.size(); d-- > 0;) {
          strides[d] = s;
          s *= c.shape[d] + (d + 1 == c.shape.size() ? pad : 0);
        }
        auto xp = random_floats(static_cast<std::size_t>(s), -20.0f, 20.0f, g());
        tensor_view<const float> vp(xp.data(), c.shape, strides);
        const auto qp = quantize_api(vp, p);
        REQUIRE(qp == quantize_ref(vp, p));
        // fully strided (inner stride 2): the reference walk
        std::vector<std::int64_t> s2(c.shape.size(), 2);
        std::int64_t t2 = 2;
        for (std::size_t d = c.shape.size(); d-- > 0;) {
          s2[d] = t2;
          t2 *= c.shape[d];
        }
        auto x2 = random_floats(static_cast<std::size_t>(t2), -20.0f, 20.0f, g());
        tensor_view<const float> v2(x2.data(), c.shape, s2);
        REQUIRE(quantize_api(v2, p) == quantize_ref(v2, p));
        // dequantize into a padded output view == reference, bit for bit
        std::vector<float> out(static_cast<std::size_t>(s), -7.0f),
            ref(static_cast<std::size_t>(s), -7.0f);
        dequantize_api(qp, p, tensor_view<float>(out.data(), c.shape, strides));
        lowbit::reference::dequantize(qp.data(), p,
                                      tensor_view<float>(ref.data(), c.shape, strides));
        for (std::size_t i = 0; i < out.size(); ++i) REQUIRE(same_bits(out[i], ref[i]));
      }
    }
  });
}

TEST_CASE("quantize rounds half to even and multiplies by the reciprocal", "[quantize]") {
  // scale 0.5: x / s = k + 0.5 exactly -> even neighbour.
  const auto p = quant_params::tensor(dtype::int8, 0.5f, 0);
  const std::vector<float> x = {0.25f, 0.75f, 1.25f, -0.25f, -0.75f, 1.75f};
  const auto q = lowbit::quantize(tensor_view<const float>(lowbit::span<const float>(x)), p);
  CHECK(q.value(0) == 0);
  CHECK(q.value(1) == 2);
  CHECK(q.value(2) == 2);
  CHECK(q.value(3) == 0);
  CHECK(q.value(4) == -2);
  CHECK(q.value(5) == 4);
  // 1/scale is rounded to float first: with s = 0.1f, x = 0.35f the quotient
  // x * float(1/s) differs from x / s; the library must use the product.
  const float s = 0.1f, v = 0.35f;
  const auto p2 = quant_params::tensor(dtype::int8, s, 0);
  const auto q2 = lowbit::quantize(tensor_view<const float>(lowbit::span<const float>(&v, 1)), p2);
  CHECK(q2.value(0) == static_cast<int>(std::nearbyint(v * (1.0f / s))));
}

TEST_CASE("quantize properties: round trip, idempotence, monotonicity", "[quantize]") {
  for (dtype t : kTypes) {
    const auto p = lowbit::choose_qparams(-3.0f, 5.0f, lowbit::qparams_options::affine(t));
    const float s = p.scales[0];
    const float lo = (static_cast<float>(p.quant_min) - static_cast<float>(p.zero_points[0])) * s;
    const float hi = (static_cast<float>(p.quant_max) - static_cast<float>(p.zero_points[0])) * s;
    std::vector<float> x(2001);
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = -3.0f + 8.0f * static_cast<float>(i) / 2000.0f;
    const auto q = lowbit::quantize(tensor_view<const float>(lowbit::span<const float>(x)), p);
    const auto back = lowbit::dequantize(q);
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (x[i] >= lo && x[i] <= hi) REQUIRE(std::abs(back[i] - x[i]) <= s / 2 * (1 + 1e-5f));
      if (i > 0)
        REQUIRE(q.value(static_cast<std::int64_t>(i)) >= q.value(static_cast<std::int64_t>(i) - 1));
    }
    const auto q2 = lowbit::quantize(tensor_view<const float>(lowbit::span<const float>(back)), p);
    REQUIRE(q2.data == q.data);  // quantize(dequantize(q)) == q
  }
}

TEST_CASE("non-finite policy: error names the index, saturate maps NaN/Inf", "[quantize][isa]") {
  lowbit_test::for_each_isa([](lowbit::isa) {
    const auto p = quant_params::tensor(dtype::uint8, 0.1f, 100);
    for (int n : {1, 7, 40, 100}) {
      for (int at : {0, n / 2, n - 1}) {
        std::vector<float> x(static_cast<std::size_t>(n), 1.0f);
        x[static_cast<std::size_t>(at)] = std::numeric_limits<float>::quiet_NaN();
        std::vector<std::uint8_t> out(static_cast<std::size_t>(n), 0xAB);
        tensor_view<const float> v(x.data(), {n});
        CHECK_THROWS_WITH(lowbit::quantize(v, p, lowbit::span<std::uint8_t>(out)),
                          Contains("non-finite value nan at index " + std::to_string(at)));
        for (auto b : out) REQUIRE(b == 0xAB);  // nothing written
      }
    }
    std::vector<float> x = {std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 1.0f};
    x.resize(37, 2.0f);
    x[33] = std::numeric_limits<float>::quiet_NaN();
    lowbit::quantize_options sat{lowbit::nonfinite_policy::saturate};
    for (dtype t : kTypes) {
      quant_params pt =
          quant_params::tensor(t, 0.1f, t == dtype::uint8 ? 100 : (t == dtype::uint4 ? 8 : 0));
      tensor_view<const float> v(x.data(), {static_cast<std::int64_t>(x.size())});
      const auto got = quantize_api(v, pt, sat);
      REQUIRE(got == quantize_ref(v, pt, true));
      const auto q = lowbit::quantize(v, pt, sat);
      CHECK(q.value(0) == pt.zero_points[0]);
      CHECK(q.value(1) == pt.quant_max);
      CHECK(q.value(2) == pt.quant_min);
      CHECK(q.value(33) == pt.zero_points[0]);
    }
  });
}

TEST_CASE("quantize rejects bad parameters and buffers, writing nothing", "[quantize]") {
  std::vector<float> x(8, 1.0f);
  tensor_view<const float> v(x.data(), {2, 4});
  std::vector<std::uint8_t> out(8, 0xAB);
  lowbit::span<std::uint8_t> o(out);
  auto p = quant_params::tensor(dtype::uint8, 0.0f, 0);
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("scale[0] = 0 is invalid"));
  p.scales[0] = -1.0f;
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("scale[0] = -1 is invalid"));
  p.scales[0] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("scale[0] = nan is invalid"));
  p.scales[0] = 0.1f;
  p.zero_points[0] = 300;
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("zero_point[0] = 300 outside [0, 255]"));
  p.zero_points[0] = 0;
  p.quant_min = 10;
  p.quant_max = 10;
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("quant_min (10) must be < quant_max (10)"));
  p.quant_min = -1;
  p.quant_max = 255;
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("range [-1, 255] does not fit uint8"));
  p.quant_min = 0;
  p.granularity = lowbit::per_group{3};
  p.scales = {0.1f, 0.1f};
  p.zero_points = {0, 0};
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("group_size 3 does not divide K = 4"));
  p.granularity = lowbit::per_group{0};
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("group_size must be > 0"));
  p.granularity = lowbit::per_channel{2};
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("per_channel axis 2 out of range"));
  p.granularity = lowbit::per_channel{1};
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("needs 4 scales for this shape, got 2"));
  p.zero_points = {0};
  CHECK_THROWS_WITH(lowbit::quantize(v, p, o), Contains("2 scales but 1 zero points"));
  const auto good = quant_params::tensor(dtype::uint8, 0.1f, 0);
  CHECK_THROWS_WITH(lowbit::quantize(v, good, lowbit::span<std::uint8_t>(out.data(), 7)),
                    Contains("output buffer too small: 8 uint8 values need 8 bytes, got 7"));
  const auto i4 = quant_params::tensor(dtype::int4, 0.1f, 0);
  CHECK_THROWS_WITH(lowbit::quantize(v, i4, lowbit::span<std::uint8_t>(out.data(), 3)),
                    Contains("8 int4 values need 4 bytes, got 3"));
  std::vector<std::int8_t> s8(8);
  CHECK_THROWS_WITH(lowbit::quantize(v, good, lowbit::span<std::int8_t>(s8)),
                    Contains("an int8_t buffer was given for dtype uint8"));
  for (auto b : out) REQUIRE(b == 0xAB);
}

TEST_CASE("INT4 packing: low nibble first, odd lengths, fast path == scalar", "[pack][isa]") {
  lowbit_test::for_each_isa([](lowbit::isa) {
    std::mt19937 g(3);
    for (int n = 0; n <= 200; ++n) {
      std::vector<std::int8_t> v(static_cast<std::size_t>(n));
      for (auto& e : v) e = static_cast<std::int8_t>(static_cast<int>(g() % 16) - 8);
      std::vector<std::uint8_t> packed(static_cast<std::size_t>((n + 1) / 2), 0xEE);
      lowbit::pack_int4(lowbit::span<const std::int8_t>(v), lowbit::span<std::uint8_t>(packed));
      std::vector<std::int32_t> wide(v.begin(), v.end());
      std::vector<std::uint8_t> ref(packed.size());
      lowbit::reference::pack_int4(wide.data(), n, ref.data());
      REQUIRE(packed == ref);
      if (n % 2 == 1) REQUIRE((packed.back() >> 4) == 0);
      std::vector<std::int8_t> back(static_cast<std::size_t>(n));
      lowbit::unpack_int4(lowbit::span<const std::uint8_t>(packed),
                          lowbit::span<std::int8_t>(back));
      REQUIRE(back == v);
      std::vector<std::uint8_t> u(static_cast<std::size_t>(n));
      for (auto& e : u) e = static_cast<std::uint8_t>(g() % 16);
      lowbit::pack_uint4(lowbit::span<const std::uint8_t>(u), lowbit::span<std::uint8_t>(packed));
      std::vector<std::uint8_t> ub(static_cast<std::size_t>(n));
      lowbit::unpack_uint4(lowbit::span<const std::uint8_t>(packed),
                           lowbit::span<std::uint8_t>(ub));
      REQUIRE(ub == u);
    }
  });
  const std::vector<std::int8_t> v = {1, -8, 7, -1, 3};
  std::vector<std::uint8_t> p(3);
  lowbit::pack_int4(lowbit::span<const std::int8_t>(v), lowbit::span<std::uint8_t>(p));
  CHECK(p == std::vector<std::uint8_t>{0x81, 0xF7, 0x03});
  const std::vector<std::int8_t> bad = {1, 2, 9};
  std::vector<std::uint8_t> keep(2, 0x11);
  CHECK_THROWS_WITH(
      lowbit::pack_int4(lowbit::span<const std::int8_t>(bad), lowbit::span<std::uint8_t>(keep)),
      Contains("value 9 at index 2 outside [-8, 7]"));
  CHECK(keep == std::vector<std::uint8_t>{0x11, 0x11});
  CHECK_THROWS_WITH(
      lowbit::pack_int4(lowbit::span<const std::int8_t>(v), lowbit::span<std::uint8_t>(keep)),
      Contains("5 values need 3 bytes, got 2"));
}

TEST_CASE("quantize_multiplier encodes like TFLite's QuantizeMultiplier", "[requantize]") {
  struct row {
    double m;
    std::int32_t mult;
    int shift;
  };
  for (const row& r : {row{0.5, 1073741824, 0}, row{1.0, 1073741824, 1}, row{0.75, 1610612736, 0},
                       row{0.0003, 1319413953, -11}, row{2.5, 1342177280, 2}, row{1e-12, 0, 0}}) {
    const auto f = lowbit::quantize_multiplier(r.m);
    CHECK(f.multiplier == r.mult);
    CHECK(f.shift == r.shift);
  }
  CHECK_THROWS_WITH(lowbit::quantize_multiplier(0.0), Contains("must be finite and > 0"));
  CHECK_THROWS_WITH(lowbit::quantize_multiplier(1e10), Contains("too large"));
}

TEST_CASE("requantize: single rounding, float form, per-channel, ReLU, saturation",
          "[requantize]") {
  // Single rounding (half up) with M = 0.0003: field-anchors table.
  const std::vector<std::int32_t> acc = {-198333, -195000, -191666, 0, 3334, 1 << 30};
  std::vector<std::int8_t> out(acc.size());
  auto rp = lowbit::requantize_params::with_fixed_point(dtype::int8, {0.0003}, 0);
  lowbit::requantize(tensor_view<const std::int32_t>(lowbit::span<const std::int32_t>(acc)), rp,
                     lowbit::span<std::int8_t>(out));
  CHECK(out == std::vector<std::int8_t>{-59, -58, -57, 0, 1, 127});
  for (std::size_t i = 0; i < acc.size(); ++i) {  // cross-check the rule in int64
    const auto f = lowbit::quantize_multiplier(0.0003);
    const std::int64_t total = 31 - f.shift;
    std::int64_t v =
        (static_cast<std::int64_t>(acc[i]) * f.multiplier + (1ll << (total - 1))) >> total;
    v = std::min<std::int64_t>(127, std::max<std::int64_t>(-128, v));
    CHECK(out[i] == v);
  }
  // Float form, per channel along the last axis, uint8 with ReLU.
  const std::vector<std::int32_t> a2 = {10, -10, 25, 1000, 5, 7};  // [2 x 3]
  auto rf = lowbit::requantize_params::with_float(dtype::uint8, {0.5f, 0.1f, 1.0f}, 128);
  rf.relu();
  std::vector<std::uint8_t> o2(6);
  lowbit::requantize(tensor_view<const std::int32_t>(a2.data(), {2, 3}), rf,
                     lowbit::span<std::uint8_t>(o2));
  // 10*.5=5 ->133; -10*.1=-1 -> 127 -> ReLU 128; 25 -> 153; 1000*.5=500 -> 255 (sat);
  // 5*.1=0.5 -> rne 0 -> 128; 7 -> 135
  CHECK(o2 == std::vector<std::uint8_t>{133, 128, 153, 255, 128, 135});
  CHECK_THROWS_WITH(
      lowbit::requantize(tensor_view<const std::int32_t>(a2.data(), {2, 3}),
                         lowbit::requantize_params::with_float(dtype::uint8, {1, 2}, 0),
                         lowbit::span<std::uint8_t>(o2)),
      Contains("2 multipliers for 3 channels"));
  CHECK_THROWS_WITH(lowbit::requantize(tensor_view<const std::int32_t>(a2.data(), {2, 3}), rf,
                                       lowbit::span<std::int8_t>(out)),
                    Contains("an int8_t buffer was given for dtype uint8"));
}
