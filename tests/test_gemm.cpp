// SPDX-License-Identifier: Apache-2.0
// gemm: lowbit::gemm on every kernel path this machine can run, against the oracle
// lowbit::reference::gemm (unpacked weights, plain loops): int32 accumulators and
// requantized bytes identical, f32 within a stated tolerance and checked bit-identical.
// Covers every activation / weight format, zero points, extreme values, int4 group
// boundaries, threads, packing reuse, the avx_vnni kernel body (through its EVEX
// twin), max_k, the documented packed layout and the error catalogue.
//
// Kernel paths: every available ISA through lowbit::gemm (weights packed for that ISA
// with pack_*'s explicit `level`, which is what dispatch follows), plus, on AVX-512
// VNNI machines, the avx_vnni kernel body compiled with EVEX vpdpbusd. ISAs the CPU
// lacks are reported with WARN (Catch2 v2 has no SKIP). The oracle result of each case
// is computed once and compared with every path: the file takes ~10 s of CPU in a Debug
// build (GCC 12, Zen 4), most of it the 4096 x 4096 cases, and ~45 s under ASan+UBSan.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "lowbit/arch/avx512_vnni/gemm_kernel_ymm.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/reference/gemm.hpp"
#include "support/isa_sweep.hpp"

using Catch::Contains;
using lowbit::dtype;
using lowbit::weight_format;

namespace {

// ---------------------------------------------------------------------------------
// Random data with fixed seeds

/// splitmix64. Every test passes a fixed seed. Used instead of std::mt19937 plus
/// distributions because those are ~10x slower at -O0, which matters for 4096 x 4096.
class rng {
 public:
  explicit rng(std::uint64_t seed) : s_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  /// Uniform integer in [lo, hi].
  std::int32_t uniform(std::int32_t lo, std::int32_t hi) {
    return lo + static_cast<std::int32_t>(next() % static_cast<std::uint64_t>(hi - lo + 1));
  }
  /// Uniform float in [lo, hi).
  float uniform(float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
  }

 private:
  std::uint64_t s_;
};

std::uint64_t mix(std::uint64_t a, std::uint64_t b) { return a * 1000003u + b * 7919u + 17u; }

std::size_t idx(std::int64_t i) { return static_cast<std::size_t>(i); }

// ---------------------------------------------------------------------------------
// Activations

/// x [m x k] with row stride ld >= k. The ld - k padding bytes of each row hold junk
/// that must never reach a result.
struct act_data {
  dtype type = dtype::uint8;  ///< uint8 (affine) or int8 (symmetric)
  std::int64_t m = 0, k = 0, ld = 0;
  std::int32_t zero_point = 0;
  std::vector<std::uint8_t> bytes;  ///< m x ld; int8 values stored as their bytes
  std::vector<float> scales;        ///< 1 (per tensor) or m (per row)

  std::int32_t value(std::int64_t i, std::int64_t j) const {
    const std::uint8_t b = bytes[idx(i * ld + j)];
    return type == dtype::int8 ? static_cast<std::int8_t>(b) : b;
  }
  lowbit::activations view() const {
    const lowbit::span<const float> s(scales);
    if (type == dtype::int8)
      return lowbit::activations::s8(reinterpret_cast<const std::int8_t*>(bytes.data()), m, k, ld,
                                     s);
    return lowbit::activations::u8(bytes.data(), m, k, ld, zero_point, s);
  }
};

/// value(i, j) is the logical value: [0, 255] for uint8, [-128, 127] for int8.
template <class F>
act_data make_activations(dtype t, std::int64_t m, std::int64_t k, std::int32_t zero_point,
                          F&& value, std::uint64_t junk_seed, std::int64_t pad = 0) {
  act_data a;
  a.type = t;
  a.m = m;
  a.k = k;
  a.ld = k + pad;
  a.zero_point = t == dtype::uint8 ? zero_point : 0;
  a.bytes.resize(idx(m * a.ld));
  rng junk(junk_seed ^ 0xA5A5u);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < a.ld; ++j)
      a.bytes[idx(i * a.ld + j)] = static_cast<std::uint8_t>(
          j < k ? value(i, j) : static_cast<std::int32_t>(junk.next() & 0xFF));
  a.scales = {0.0125f};
  return a;
}

act_data random_activations(dtype t, std::int64_t m, std::int64_t k, std::int32_t zero_point,
                            std::uint64_t seed, std::int64_t pad = 0) {
  rng r(seed);
  const std::int32_t lo = t == dtype::uint8 ? 0 : -128, hi = t == dtype::uint8 ? 255 : 127;
  return make_activations(
      t, m, k, zero_point, [&](std::int64_t, std::int64_t) { return r.uniform(lo, hi); }, seed,
      pad);
}

/// Per-row activation scales in [0.005, 0.05).
std::vector<float> random_row_scales(std::int64_t m, std::uint64_t seed) {
  rng r(seed);
  std::vector<float> s(idx(m));
  for (auto& v : s) v = r.uniform(0.005f, 0.05f);
  return s;
}

// ---------------------------------------------------------------------------------
// Weights

enum class wkind { s8_sym_channel, s8_sym_tensor, s8_affine_channel, s8_affine_tensor, s4 };

const char* name(wkind k) {
  switch (k) {
    case wkind::s8_sym_channel:
      return "s8 symmetric per-channel";
    case wkind::s8_sym_tensor:
      return "s8 symmetric per-tensor";
    case wkind::s8_affine_channel:
      return "s8 affine per-channel zero points";
    case wkind::s8_affine_tensor:
      return "s8 affine per-tensor zero point";
    case wkind::s4:
      return "s4 per-group";
  }
  return "?";
}

/// W [n x k] unpacked (one value per byte, row stride ld) plus the parameters exactly
/// as they are handed to pack_s8 / pack_s4.
struct weight_data {
  weight_format format = weight_format::s8;
  std::int64_t n = 0, k = 0, ld = 0, group_size = 0;  ///< group_size: s4 only
  std::vector<std::int8_t> values;                    ///< n x ld; s4 values in [-8, 7]
  std::vector<float> scales;                          ///< s8: 1 or n; s4: n x groups, row-major
  std::vector<std::int32_t> zero_points;              ///< s8: empty, 1 or n

  std::int64_t groups() const { return format == weight_format::s4 ? k / group_size : 1; }
  std::int8_t at(std::int64_t i, std::int64_t j) const { return values[idx(i * ld + j)]; }
  std::int32_t zero_point(std::int64_t i) const {
    if (zero_points.empty()) return 0;
    return zero_points.size() == 1 ? zero_points[0] : zero_points[idx(i)];
  }
  /// Scale of channel i (s8) or of channel i, group g (s4).
  float scale(std::int64_t i, std::int64_t g = 0) const {
    if (format == weight_format::s4) return scales[idx(i * groups() + g)];
    return scales.size() == 1 ? scales[0] : scales[idx(i)];
  }

  /// s4 in lowbit's interchange layout: element 2i in the low nibble, rows contiguous.
  std::vector<std::uint8_t> nibbles() const {
    std::vector<std::uint8_t> p(idx((n * k + 1) / 2), 0);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t flat = i * k + j;
        p[idx(flat / 2)] |= static_cast<std::uint8_t>((at(i, j) & 0x0F) << (4 * (flat % 2)));
      }
    return p;
  }

  lowbit::packed_weights pack(lowbit::isa level) const {
    if (format == weight_format::s8)
      return lowbit::packed_weights::pack_s8(values.data(), n, k, ld,
                                             lowbit::span<const float>(scales),
                                             lowbit::span<const std::int32_t>(zero_points), level);
    const auto nib = nibbles();
    return lowbit::packed_weights::pack_s4(nib.data(), n, k, group_size,
                                           lowbit::span<const float>(scales), level);
  }

  /// The oracle's view: scales and zero points expanded to one per channel (s8).
  lowbit::reference::weights ref() const {
    lowbit::reference::weights r;
    r.format = format;
    r.values = values.data();
    r.n = n;
    r.k = k;
    r.ld = ld;
    r.group_size = group_size;
    if (format == weight_format::s4) {
      r.scales = scales;
    } else {
      for (std::int64_t i = 0; i < n; ++i) r.scales.push_back(scale(i));
      if (!zero_points.empty())
        for (std::int64_t i = 0; i < n; ++i) r.zero_points.push_back(zero_point(i));
    }
    return r;
  }
};

/// value(i, j) is the logical weight ([-128, 127] for s8, [-8, 7] for s4).
/// group_size is used for s4 only; pad (extra row stride) for s8 only.
template <class F>
weight_data make_weights(wkind kind, std::int64_t n, std::int64_t k, std::int64_t group_size,
                         F&& value, std::uint64_t seed, std::int64_t pad = 0) {
  weight_data w;
  const bool s4 = kind == wkind::s4;
  w.format = s4 ? weight_format::s4 : weight_format::s8;
  w.n = n;
  w.k = k;
  w.ld = s4 ? k : k + pad;
  w.group_size = s4 ? group_size : 0;
  rng r(seed ^ 0x3C3Cu);
  w.values.resize(idx(n * w.ld));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < w.ld; ++j)
      w.values[idx(i * w.ld + j)] =
          static_cast<std::int8_t>(j < k ? value(i, j) : r.uniform(-128, 127));
  switch (kind) {
    case wkind::s8_sym_tensor:
    case wkind::s8_affine_tensor:
      w.scales = {r.uniform(0.005f, 0.02f)};
      break;
    case wkind::s8_sym_channel:
    case wkind::s8_affine_channel:
      for (std::int64_t i = 0; i < n; ++i) w.scales.push_back(r.uniform(0.002f, 0.03f));
      break;
    case wkind::s4:
      for (std::int64_t i = 0; i < n * w.groups(); ++i) w.scales.push_back(r.uniform(0.01f, 0.1f));
      break;
  }
  if (kind == wkind::s8_affine_channel) {
    for (std::int64_t i = 0; i < n; ++i) w.zero_points.push_back(r.uniform(-128, 127));
    w.zero_points.front() = -128;  // both ends of the range
    if (n > 1) w.zero_points.back() = 127;
  }
  if (kind == wkind::s8_affine_tensor)  // non-zero, else it would be the symmetric path
    w.zero_points = {r.uniform(1, 127) * (r.next() % 2 ? 1 : -1)};
  return w;
}

weight_data random_weights(wkind kind, std::int64_t n, std::int64_t k, std::int64_t group_size,
                           std::uint64_t seed, std::int64_t pad = 0) {
  rng r(seed);
  const bool s4 = kind == wkind::s4;
  // s8: every other panel of 16 channels (by seed) avoids -128 and the others hold at
  // least one, so AVX2's sign trick runs with and without its -128 fix-up
  // (packed_weights::min_entries) on every shape list.
  const auto lowest = [&](std::int64_t i) { return (i / 16 + seed) % 2 ? -128 : -127; };
  return make_weights(
      kind, n, k, group_size,
      [&](std::int64_t i, std::int64_t j) {
        if (s4) return r.uniform(-8, 7);
        if (lowest(i) == -128 && i % 16 == 0 && j == k / 2) return std::int32_t{-128};
        return r.uniform(lowest(i), 127);
      },
      seed, pad);
}

// ---------------------------------------------------------------------------------
// Kernel paths

using gemm_fn = void (*)(const lowbit::activations&, const lowbit::packed_weights&,
                         const lowbit::epilogue&, lowbit::output, const lowbit::gemm_context&);

struct kernel_path {
  std::string name;
  lowbit::isa level;  ///< the ISA the weights are packed for
  gemm_fn run;
};

void public_gemm(const lowbit::activations& x, const lowbit::packed_weights& w,
                 const lowbit::epilogue& e, lowbit::output y, const lowbit::gemm_context& ctx) {
  lowbit::gemm(x, w, e, y, ctx);
}

#if LOWBIT_HAVE_X86_DISPATCH
// The avx_vnni kernels are arch/avx_vnni/gemm_kernel-inl.hpp compiled with VEX vpdpbusd
// (_mm256_dpbusd_avx_epi32). arch/avx512_vnni/gemm_kernel_ymm.hpp compiles the very
// same kernel body with EVEX vpdpbusd (_mm256_dpbusd_epi32, AVX512-VNNI + VL): the two
// instructions compute the same thing, only the encoding differs. Running the driver
// with those kernels therefore verifies the avx_vnni kernel logic (register blocking,
// MR = 4, the two ymm halves, the s4 unpacking) on CPUs that have AVX-512 VNNI but not
// AVX-VNNI, such as AMD Zen 4.
void avx_vnni_body_via_evex(const lowbit::activations& x, const lowbit::packed_weights& w,
                            const lowbit::epilogue& e, lowbit::output y,
                            const lowbit::gemm_context& ctx) {
  lowbit::detail::gemm_call call;
  lowbit::detail::validate_gemm(call, x, w, e, y, ctx);
  call.kt = &lowbit::arch::avx512_vnni::ymm_test_table;
  lowbit::detail::run_gemm(call);
}
#endif

const lowbit::isa kAllIsas[] = {lowbit::isa::portable, lowbit::isa::avx2, lowbit::isa::avx_vnni,
                                lowbit::isa::avx512_vnni, lowbit::isa::amx_int8};

/// Every kernel path this machine runs; WARNs about the ISAs it cannot test.
std::vector<kernel_path> kernel_paths() {
  std::vector<kernel_path> v;
  for (lowbit::isa i : kAllIsas) {
    if (lowbit::is_available(i)) {
      v.push_back({lowbit::to_string(i), i, &public_gemm});
    } else {
      WARN("isa " << lowbit::to_string(i) << " not available on this CPU/OS: not tested here");
    }
  }
#if LOWBIT_HAVE_X86_DISPATCH
  if (lowbit::is_available(lowbit::isa::avx512_vnni))
    v.push_back({"avx_vnni kernel body (EVEX ymm on avx512_vnni)", lowbit::isa::avx512_vnni,
                 &avx_vnni_body_via_evex});
  else if (!lowbit::is_available(lowbit::isa::avx_vnni))
    WARN("neither avx_vnni nor avx512_vnni available: the avx_vnni kernel body is not tested");
#endif
  return v;
}

/// Packs `w` once for every path.
std::vector<lowbit::packed_weights> pack_for(const std::vector<kernel_path>& paths,
                                             const weight_data& w) {
  std::vector<lowbit::packed_weights> v;
  for (const auto& p : paths) v.push_back(w.pack(p.level));
  return v;
}

// ---------------------------------------------------------------------------------
// Running and comparing

constexpr std::int64_t kOutPad = 3;      ///< extra output columns that must stay untouched
constexpr unsigned char kCanary = 0xA5;  ///< fill byte of output buffers

/// Runs `path` into an [m x n] buffer with row stride n + kOutPad filled with kCanary,
/// checks the padding is intact and returns the compact [m x n] result.
template <class T>
std::vector<T> run(const kernel_path& path, const act_data& x, const lowbit::packed_weights& w,
                   const lowbit::epilogue& e, int threads = 1) {
  const std::int64_t n = w.n(), ld = n + kOutPad;
  std::vector<T> buf(idx(x.m * ld));
  if (!buf.empty()) std::memset(buf.data(), kCanary, buf.size() * sizeof(T));
  path.run(x.view(), w, e, lowbit::output(buf.data(), ld), lowbit::gemm_context{threads});
  std::vector<T> y(idx(x.m * n));
  bool pad_intact = true;
  for (std::int64_t i = 0; i < x.m; ++i) {
    std::memcpy(y.data() + i * n, buf.data() + i * ld, idx(n) * sizeof(T));
    const auto* pad = reinterpret_cast<const unsigned char*>(buf.data() + i * ld + n);
    for (std::size_t b = 0; b < kOutPad * sizeof(T); ++b)
      pad_intact = pad_intact && pad[b] == kCanary;
  }
  REQUIRE(pad_intact);
  return y;
}

/// The oracle on the unpacked weights, [m x n] compact.
template <class T>
std::vector<T> run_reference(const act_data& x, const weight_data& w, const lowbit::epilogue& e) {
  std::vector<T> y(idx(x.m * w.n));
  lowbit::reference::gemm(x.view(), w.ref(), e, lowbit::output(y.data(), w.n));
  return y;
}

template <class T>
std::string show(T v) {
  std::ostringstream os;
  os.precision(9);
  os << +v;
  return os.str();
}

/// "" when `got` and `want` are identical (bitwise, also for floats), otherwise the
/// number of differences and the first one.
template <class T>
std::string differences(const std::vector<T>& got, const std::vector<T>& want, std::int64_t n) {
  if (got.size() != want.size()) return "size " + show(got.size()) + " != " + show(want.size());
  std::size_t count = 0, first = 0;
  for (std::size_t i = 0; i < got.size(); ++i)
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0 && count++ == 0) first = i;
  if (count == 0) return "";
  std::ostringstream os;
  os << count << " of " << got.size() << " differ, first at [" << first / idx(n) << "]["
     << first % idx(n) << "]: got " << show(got[first]) << ", want " << show(want[first]);
  return os.str();
}

std::string describe(std::int64_t m, std::int64_t n, std::int64_t k, const act_data& x, wkind kind,
                     std::int64_t group_size = 0) {
  std::ostringstream os;
  os << "M=" << m << " N=" << n << " K=" << k << " (x.ld=" << x.ld << ") activations "
     << (x.type == dtype::uint8 ? "u8 zp=" + std::to_string(x.zero_point) : std::string("s8"))
     << ", weights " << name(kind);
  if (kind == wkind::s4) os << " group_size=" << group_size;
  return os.str();
}

/// sum_g |acc_g[m][n]| * sw[n][g] (s8: |acc[m][n]| * sw[n]) from the oracle, run per
/// group for s4: the magnitude the f32 rounding errors are relative to.
std::vector<double> scaled_magnitude(const act_data& x, const weight_data& w) {
  std::vector<double> mag(idx(x.m * w.n), 0.0);
  const std::int64_t G = w.groups(), gs = w.format == weight_format::s4 ? w.group_size : w.k;
  for (std::int64_t g = 0; g < G; ++g) {
    lowbit::reference::weights slice = w.ref();
    slice.format = weight_format::s8;  // int4 values are valid int8 values
    slice.values = w.values.data() + g * gs;
    slice.k = gs;
    slice.group_size = 0;
    slice.scales.assign(idx(w.n), 1.0f);
    lowbit::activations xs = x.view();
    xs.data = x.bytes.data() + g * gs;
    xs.k = gs;
    std::vector<std::int32_t> acc(idx(x.m * w.n));
    lowbit::reference::gemm(xs, slice, lowbit::epilogue::int32(), lowbit::output(acc.data(), w.n));
    for (std::int64_t i = 0; i < x.m; ++i)
      for (std::int64_t j = 0; j < w.n; ++j)
        mag[idx(i * w.n + j)] += std::abs(static_cast<double>(acc[idx(i * w.n + j)])) *
                                 static_cast<double>(w.scale(j, g));
  }
  return mag;
}

/// Elements of `got` farther from `want` than the f32 tolerance (see the epilogue test).
std::string out_of_tolerance(const std::vector<float>& got, const std::vector<float>& want,
                             const act_data& x, const weight_data& w,
                             const std::vector<double>& mag, const std::vector<float>& bias) {
  std::size_t count = 0;
  std::string first;
  for (std::int64_t i = 0; i < x.m; ++i)
    for (std::int64_t j = 0; j < w.n; ++j) {
      const std::size_t at = idx(i * w.n + j);
      const double sx = x.scales.size() == 1 ? x.scales[0] : x.scales[idx(i)];
      const double b = bias.empty() ? 0.0 : std::abs(bias[idx(j)]);
      const double tol =
          std::ldexp((static_cast<double>(w.groups()) + 2.0) * sx * mag[at] + b, -20);
      const double d = std::abs(static_cast<double>(got[at]) - static_cast<double>(want[at]));
      if (!(d <= tol) && count++ == 0)
        first = "[" + show(i) + "][" + show(j) + "]: got " + show(got[at]) + ", want " +
                show(want[at]) + ", tolerance " + show(tol);
    }
  return count == 0 ? "" : show(count) + " outside the tolerance, first at " + first;
}

std::size_t bit_differences(const std::vector<float>& a, const std::vector<float>& b) {
  std::size_t c = 0;
  for (std::size_t i = 0; i < a.size(); ++i) c += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return c;
}

// ---------------------------------------------------------------------------------
// Shapes

const std::int64_t kDims[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,   10,  15,
                              16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129};

struct shape {
  std::int64_t m, n, k, group_size;  ///< group_size: s4 only
};

// Why not the cartesian product: kDims^3 is 10648 shapes and 4.7e8 multiply-adds per
// configuration, ~5 s of the scalar -O0 oracle alone per configuration plus the kernels
// of every path: minutes for the configurations below in Debug, several times that
// under ASan. The three dimensions are handled by separate mechanisms (M: tiles of
// MR = 2, 4 or 8 rows plus a remainder tile; N: panels of 16 channels plus a partial
// last panel; K: k4 rows plus zero padding to a multiple of 4, or s4 groups), so every
// value of each dimension is swept against a few values of the other two chosen to hit
// full and partial tiles / panels / k4 rows, and 200 random triples from the list (100
// for s4) catch interactions between them.

/// s8 weights: any K.
std::vector<shape> s8_shapes() {
  std::vector<shape> v;
  for (std::int64_t d : kDims) {
    for (std::int64_t a : {17, 64})
      for (std::int64_t b : {17, 64}) v.push_back({d, a, b, 0});  // M sweep
    for (std::int64_t a : {3, 65})
      for (std::int64_t b : {3, 65}) v.push_back({a, d, b, 0});  // N sweep
    for (std::int64_t a : {5, 33})
      for (std::int64_t b : {5, 33}) v.push_back({a, b, d, 0});  // K sweep
  }
  rng r(20240601);
  const std::int32_t last = static_cast<std::int32_t>(std::size(kDims)) - 1;
  for (int i = 0; i < 200; ++i)
    v.push_back(
        {kDims[r.uniform(0, last)], kDims[r.uniform(0, last)], kDims[r.uniform(0, last)], 0});
  return v;
}

/// s4 weights: K is a multiple of group_size (32, 64 or 128), so the K sweep runs over
/// multiples of the group sizes instead of kDims.
std::vector<shape> s4_shapes() {
  std::vector<shape> v;
  for (std::int64_t d : kDims) {
    for (std::int64_t n : {17, 64}) {
      v.push_back({d, n, 64, 32});  // M sweep
      v.push_back({d, n, 256, 128});
    }
    for (std::int64_t m : {3, 65}) {
      v.push_back({m, d, 128, 64});  // N sweep
      v.push_back({m, d, 96, 32});
    }
  }
  const shape ks[] = {{0, 0, 32, 32},   {0, 0, 64, 32},   {0, 0, 96, 32},   {0, 0, 160, 32},
                      {0, 0, 1056, 32}, {0, 0, 64, 64},   {0, 0, 192, 64},  {0, 0, 320, 64},
                      {0, 0, 1024, 64}, {0, 0, 128, 128}, {0, 0, 384, 128}, {0, 0, 4096, 128}};
  for (const shape& s : ks)  // K sweep
    for (std::int64_t m : {5, 33})
      for (std::int64_t n : {5, 33}) v.push_back({m, n, s.k, s.group_size});
  rng r(20240602);
  const std::int32_t last = static_cast<std::int32_t>(std::size(kDims)) - 1;
  for (int i = 0; i < 100; ++i) {
    const std::int64_t gs = std::int64_t{32} << r.uniform(0, 2);
    v.push_back({kDims[r.uniform(0, last)], kDims[r.uniform(0, last)], gs * r.uniform(1, 4), gs});
  }
  return v;
}

/// Activation zero points cycled through the sweeps: both ends of [0, 255] and two
/// values inside.
const std::int32_t kActZeroPoints[] = {0, 255, 128, 37};

}  // namespace

// =================================================================================
// int32 against the oracle on the shape lists

TEST_CASE("s8 weights: int32 identical to the reference on every kernel path and shape",
          "[gemm][isa]") {
  const auto paths = kernel_paths();
  const auto shapes = s8_shapes();
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const shape& s = shapes[i];
    // int32 results do not depend on scales, so per-tensor vs per-channel only matters
    // for zero points; alternate the granularities along the list.
    const wkind kinds[] = {i % 2 ? wkind::s8_sym_channel : wkind::s8_sym_tensor,
                           i % 2 ? wkind::s8_affine_tensor : wkind::s8_affine_channel};
    for (wkind kind : kinds) {
      const auto w =
          random_weights(kind, s.n, s.k, 0, mix(i, 1 + static_cast<int>(kind)), (i % 2) * 9);
      const auto packed = pack_for(paths, w);
      for (dtype at : {dtype::uint8, dtype::int8}) {
        const std::int64_t pads[] = {0, 3, 64};
        const auto x = random_activations(at, s.m, s.k, kActZeroPoints[i % 4],
                                          mix(i, 10 + static_cast<int>(at)), pads[i % 3]);
        const auto want = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
        INFO(describe(s.m, s.n, s.k, x, kind) << ", w.ld=" << w.ld);
        for (std::size_t p = 0; p < paths.size(); ++p) {
          INFO("path " << paths[p].name);
          CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()),
                            want, s.n) == "");
        }
      }
    }
  }
}

TEST_CASE("s4 weights: int32 identical to the reference on every kernel path and shape",
          "[gemm][isa]") {
  const auto paths = kernel_paths();
  const auto shapes = s4_shapes();
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    const shape& s = shapes[i];
    const auto w = random_weights(wkind::s4, s.n, s.k, s.group_size, mix(i, 100));
    const auto packed = pack_for(paths, w);
    for (dtype at : {dtype::uint8, dtype::int8}) {
      const auto x = random_activations(at, s.m, s.k, kActZeroPoints[i % 4],
                                        mix(i, 110 + static_cast<int>(at)), (i % 2) * 5);
      const auto want = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
      INFO(describe(s.m, s.n, s.k, x, wkind::s4, s.group_size));
      for (std::size_t p = 0; p < paths.size(); ++p) {
        INFO("path " << paths[p].name);
        CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()),
                          want, s.n) == "");
      }
    }
  }
}

namespace {

/// Freivalds' check of y = sum_k (x - zx)(W - zw) for all M x N entries at O(MK + NK +
/// MN) cost: for a random integer vector r, y r must equal (x - zx) ((W - zw)^T r),
/// exactly in int64 (|r| <= 1000 keeps every sum below 2^53 at these sizes). A wrong row
/// passes one r with probability <= 1/2001 (the r entry of one wrong column is free),
/// so three vectors leave < 1.2e-10. Returns the rows that fail.
std::vector<std::int64_t> freivalds(const act_data& x, const weight_data& w,
                                    const std::vector<std::int32_t>& y, std::uint64_t seed) {
  std::vector<std::int64_t> bad;
  rng g(seed);
  for (int round = 0; round < 3; ++round) {
    std::vector<std::int64_t> r(idx(w.n)), t(idx(w.k), 0);
    for (auto& v : r) v = g.uniform(-1000, 1000);
    for (std::int64_t n = 0; n < w.n; ++n)
      for (std::int64_t k = 0; k < w.k; ++k)
        t[idx(k)] += (w.at(n, k) - w.zero_point(n)) * r[idx(n)];
    for (std::int64_t m = 0; m < x.m; ++m) {
      std::int64_t lhs = 0, rhs = 0;
      for (std::int64_t n = 0; n < w.n; ++n) lhs += y[idx(m * w.n + n)] * r[idx(n)];
      for (std::int64_t k = 0; k < w.k; ++k) rhs += (x.value(m, k) - x.zero_point) * t[idx(k)];
      if (lhs != rhs && std::find(bad.begin(), bad.end(), m) == bad.end()) bad.push_back(m);
    }
  }
  return bad;
}

}  // namespace

TEST_CASE("LLM shapes (1|16|128) x 4096 x 4096, s8 weights, int32", "[gemm][isa][llm]") {
  // 1 and 16 rows: the full result against the oracle on every path. 128 rows is 2.1e9
  // multiply-adds, ~20 s for the -O0 oracle and ~9 s for the -O0 portable kernel, so it
  // runs on the best ISA only and is checked by (a) Freivalds' exact randomized check of
  // all 128 x 4096 entries, (b) the oracle on rows at tile boundaries (MR = 2, 4, 8).
  const std::int64_t N = 4096, K = 4096;
  const auto paths = kernel_paths();
  const auto w = random_weights(wkind::s8_sym_channel, N, K, 0, 4096);
  const auto packed = pack_for(paths, w);
  struct llm_case {
    std::int64_t m;
    dtype type;
  };
  for (const llm_case c : {llm_case{1, dtype::uint8}, llm_case{16, dtype::int8}}) {
    const auto x = random_activations(c.type, c.m, K, 131, mix(4096, c.m));
    const auto want = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
    INFO(describe(c.m, N, K, x, wkind::s8_sym_channel));
    for (std::size_t p = 0; p < paths.size(); ++p) {
      INFO("path " << paths[p].name);
      CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()), want,
                        N) == "");
    }
  }

  const lowbit::isa best = lowbit::available_isas().back();
  std::size_t bp = 0;
  while (paths[bp].level != best || paths[bp].run != &public_gemm) ++bp;
  INFO("M=128 on the best isa " << lowbit::to_string(best));
  const auto x = random_activations(dtype::uint8, 128, K, 131, mix(4096, 128));
  const auto y = run<std::int32_t>(paths[bp], x, packed[bp], lowbit::epilogue::int32());
  CHECK(freivalds(x, w, y, 77).empty());
  auto corrupted = y;  // the check itself finds a single wrong entry
  corrupted[idx(5 * N + 4000)] += 1;
  CHECK(freivalds(x, w, corrupted, 78) == std::vector<std::int64_t>{5});
  for (std::int64_t row : {0, 7, 8, 127}) {
    act_data one = x;
    one.m = 1;
    one.bytes.assign(x.bytes.begin() + row * x.ld, x.bytes.begin() + (row + 1) * x.ld);
    const auto want = run_reference<std::int32_t>(one, w, lowbit::epilogue::int32());
    const std::vector<std::int32_t> got(y.begin() + row * N, y.begin() + (row + 1) * N);
    INFO("row " << row);
    CHECK(differences(got, want, N) == "");
  }
}

// =================================================================================
// Epilogues

TEST_CASE("every epilogue: f32 within tolerance and bit-identical, requantize bytes identical",
          "[gemm][isa]") {
  // f32 tolerance. The reference and the kernels both evaluate
  //   s8: float(acc) * (sx * sw[n]) + bias[n]
  //   s4: (sum_g float(acc_g) * sw[n][g]) * sx + bias[n]
  // in float32 (unit roundoff u = 2^-24). With mag = sum_g |acc_g| sw[n][g] (G = 1 for
  // s8), the terms before the bias carry at most G + 2 roundings (s8: float(acc),
  // sx * sw, the product), the bias add one more, so to first order each side is within
  // (G + 3) u sx mag + u (sx mag + |bias|) of the exact real value, and the two differ
  // by at most 2 (G + 4) u sx mag + 2 u |bias| <= 2^-20 ((G + 2) sx mag + |bias|), the
  // bound checked here. Clamp and ReLU are 1-Lipschitz, so it holds after them too.
  // Since the implementation performs the same operations in the same order, the
  // results are also required to be bit-identical (FP contraction into FMA is the one
  // legitimate source of differences: with FMA enabled at compile time a difference is
  // reported with WARN instead).
  const auto paths = kernel_paths();
  const shape s8s[] = {{1, 1, 1, 0},    {3, 17, 64, 0},  {9, 33, 100, 0}, {17, 65, 128, 0},
                       {8, 16, 257, 0}, {2, 129, 33, 0}, {65, 31, 7, 0}};
  const shape s4s[] = {{1, 1, 32, 32},     {3, 17, 64, 32},   {9, 33, 128, 64},
                       {17, 65, 256, 128}, {8, 16, 384, 128}, {2, 129, 96, 32}};
  std::vector<std::pair<shape, wkind>> cases;
  for (const shape& s : s8s)
    for (wkind k : {wkind::s8_sym_channel, wkind::s8_sym_tensor, wkind::s8_affine_channel,
                    wkind::s8_affine_tensor})
      cases.push_back({s, k});
  for (const shape& s : s4s) cases.push_back({s, wkind::s4});

  // Coverage counters: the epilogue features must actually change values.
  std::size_t relu_zero = 0, relu_positive = 0, clamped_lo = 0, clamped_hi = 0, clamp_inside = 0;
  std::size_t rq_lo[2] = {}, rq_hi[2] = {}, rq_inside[2] = {}, rq_relu_at_zp = 0;
  std::size_t bit_diffs = 0;

  std::uint64_t seed = 500;
  for (const auto& [s, kind] : cases) {
    const auto w = random_weights(kind, s.n, s.k, s.group_size, ++seed);
    const auto packed = pack_for(paths, w);
    for (dtype at : {dtype::uint8, dtype::int8}) {
      auto x = random_activations(at, s.m, s.k, at == dtype::uint8 ? 120 : 0, ++seed, 2);
      INFO(describe(s.m, s.n, s.k, x, kind, s.group_size));
      const auto acc = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
      const auto mag = scaled_magnitude(x, w);
      const std::vector<float> per_tensor = {0.0125f};
      const std::vector<float> per_row = random_row_scales(s.m, ++seed);
      // A bias of the order of the results, so it matters.
      double typical = 0.0;
      for (double v : mag) typical = std::max(typical, v * 0.0125);
      std::vector<float> bias(idx(s.n));
      rng rb(++seed);
      for (auto& b : bias)
        b = rb.uniform(-1.0f, 1.0f) * static_cast<float>(std::max(typical, 1e-3) * 0.5);

      // ---- f32
      struct f32_case {
        const char* name;
        const std::vector<float>* scales;
        bool bias, relu, clamp;
      };
      const f32_case fcases[] = {{"per-tensor", &per_tensor, false, false, false},
                                 {"per-row + bias", &per_row, true, false, false},
                                 {"per-row + bias + relu", &per_row, true, true, false},
                                 {"per-tensor + bias + clamp", &per_tensor, true, false, true},
                                 {"per-row + clamp + relu", &per_row, false, true, true}};
      const float c = static_cast<float>(std::max(typical, 1e-3) * 0.3);
      for (const f32_case& fc : fcases) {
        INFO("f32 epilogue " << fc.name);
        x.scales = *fc.scales;
        auto e = lowbit::epilogue::f32(fc.bias ? lowbit::span<const float>(bias)
                                               : lowbit::span<const float>());
        if (fc.clamp) e.clamp(-c, c);
        if (fc.relu) e.relu();
        const auto want = run_reference<float>(x, w, e);
        for (std::size_t p = 0; p < paths.size(); ++p) {
          INFO("path " << paths[p].name);
          const auto got = run<float>(paths[p], x, packed[p], e);
          CHECK(out_of_tolerance(got, want, x, w, mag, fc.bias ? bias : std::vector<float>()) ==
                "");
          const std::size_t d = bit_differences(got, want);
          bit_diffs += d;
#if defined(__FMA__)
          if (d != 0) WARN(d << " f32 results differ in their last bits (FMA enabled)");
#else
          CHECK(differences(got, want, s.n) == "");
#endif
        }
        for (float v : want) {
          if (fc.relu) (v == 0.0f ? relu_zero : relu_positive) += v >= 0.0f;
          if (fc.clamp) (v == -c ? clamped_lo : v == c ? clamped_hi : clamp_inside) += 1;
        }
      }

      // ---- requantize (s8 weights only)
      if (kind == wkind::s4) continue;
      x.scales = per_tensor;
      float sw_max = 0.0f;
      for (std::int64_t j = 0; j < s.n; ++j) sw_max = std::max(sw_max, w.scale(j));
      std::int32_t acc_max = 1;
      for (auto a : acc) acc_max = std::max(acc_max, a < 0 ? -a : a);
      // The largest |result| maps to ~150 output steps: both ends saturate.
      const float out_scale = static_cast<float>(acc_max) * 0.0125f * sw_max / 150.0f;
      for (dtype out : {dtype::uint8, dtype::int8}) {
        const std::int32_t zy = out == dtype::uint8 ? 120 : -7;
        for (bool with_bias : {false, true})
          for (bool relu : {false, true}) {
            INFO("requantize to " << lowbit::to_string(out) << " zp=" << zy
                                  << " out_scale=" << out_scale << (with_bias ? " + bias" : "")
                                  << (relu ? " + relu" : ""));
            auto e = lowbit::epilogue::requantize(
                out, out_scale, zy,
                with_bias ? lowbit::span<const float>(bias) : lowbit::span<const float>());
            if (relu) e.relu();
            const int o = out == dtype::uint8 ? 0 : 1;
            const std::int32_t lo = lowbit::dtype_min(out), hi = lowbit::dtype_max(out);
            if (out == dtype::uint8) {
              const auto want = run_reference<std::uint8_t>(x, w, e);
              for (std::size_t p = 0; p < paths.size(); ++p) {
                INFO("path " << paths[p].name);
                CHECK(differences(run<std::uint8_t>(paths[p], x, packed[p], e), want, s.n) == "");
              }
              for (std::int32_t v : want) {
                (v == lo ? rq_lo[o] : v == hi ? rq_hi[o] : rq_inside[o]) += !relu;
                rq_relu_at_zp += relu && v == zy;
                CHECK((!relu || v >= zy));
              }
            } else {
              const auto want = run_reference<std::int8_t>(x, w, e);
              for (std::size_t p = 0; p < paths.size(); ++p) {
                INFO("path " << paths[p].name);
                CHECK(differences(run<std::int8_t>(paths[p], x, packed[p], e), want, s.n) == "");
              }
              for (std::int32_t v : want) {
                (v == lo ? rq_lo[o] : v == hi ? rq_hi[o] : rq_inside[o]) += !relu;
                rq_relu_at_zp += relu && v == zy;
                CHECK((!relu || v >= zy));
              }
            }
          }
      }
    }
  }
  INFO("coverage of the epilogue features");
  CHECK(relu_zero > 0);
  CHECK(relu_positive > 0);
  CHECK(clamped_lo > 0);
  CHECK(clamped_hi > 0);
  CHECK(clamp_inside > 0);
  for (int o = 0; o < 2; ++o) {
    CHECK(rq_lo[o] > 0);
    CHECK(rq_hi[o] > 0);
    CHECK(rq_inside[o] > 0);
  }
  CHECK(rq_relu_at_zp > 0);
  if (bit_diffs != 0) WARN(bit_diffs << " f32 results were not bit-identical to the reference");
}

TEST_CASE("requantize rounds as documented: ties to even, (sx * sw) / sy in float32",
          "[gemm][isa]") {
  // Random data almost never comes within an ulp of a rounding boundary, so these
  // channels are built to sit on one: an implementation that rounds half away from
  // zero, quantizes the bias another way, or forms the multiplier in another order
  // (sx * (sw / sy), in double, with an FMA) changes some of these bytes. Each case is
  // M = 3 rows of x = 1 (u8, zero point 0) and K = 1, so acc[n] = w[n], requantized to
  // int8 with zero point 0; the closed form is checked against the oracle too.
  const auto paths = kernel_paths();
  struct channel {
    float sw;
    std::int32_t w;
    float bias;
  };
  struct rq_case {
    const char* what;
    float sx, sy;
    std::vector<channel> ch;
  };
  std::vector<rq_case> cases;

  // acc * mult is an exact tie: mult = 0.5 * 1 / 1 and every odd acc in [-127, 127]
  rq_case ties{"acc ties", 0.5f, 1.0f, {}};
  for (std::int32_t a = -127; a <= 127; a += 2) ties.ch.push_back({1.0f, a, 0.0f});
  cases.push_back(ties);

  // bias / (sx * sw) is an exact tie, acc = 0: bias_q = round_half_even(k + 0.5)
  rq_case bias_ties{"bias ties", 1.0f, 1.0f, {}};
  rng r(1234);
  for (int k = -20; k <= 20; ++k) {
    for (int tries = 0; tries < 100; ++tries) {
      const float sw = r.uniform(1.0f, 2.0f);
      const float b = (static_cast<float>(k) + 0.5f) * sw;
      if (b / sw == static_cast<float>(k) + 0.5f) {
        bias_ties.ch.push_back({sw, 0, b});
        break;
      }
    }
  }
  REQUIRE(bias_ties.ch.size() >= 30);
  cases.push_back(bias_ties);

  // float(acc) * mult rounds differently with mult = (sx * sw) / sy (the definition)
  // than with sx * (sw / sy) or with a double multiplier: aim acc * mult at j + 0.5
  rq_case order{"multiplier order", 0.0123f, 0.0371f, {}};
  for (int tries = 0; tries < 20000 && order.ch.size() < 64; ++tries) {
    const std::int32_t a = r.uniform(3, 127) * (tries % 2 ? -1 : 1);
    const std::int32_t j = r.uniform(std::abs(a) / 2, std::abs(a) - 1);
    const float sw =
        (static_cast<float>(j) + 0.5f) / static_cast<float>(std::abs(a)) * order.sy / order.sx;
    const float mult = (order.sx * sw) / order.sy;
    const float alt = order.sx * (sw / order.sy);
    const double dmult = static_cast<double>(order.sx) * sw / order.sy;
    const float v = std::nearbyint(static_cast<float>(a) * mult);
    if (v != std::nearbyint(static_cast<float>(a) * alt) ||
        static_cast<double>(v) != std::nearbyint(a * dmult))
      order.ch.push_back({sw, a, 0.0f});
  }
  REQUIRE(order.ch.size() >= 32);
  cases.push_back(order);

  for (const rq_case& c : cases) {
    const auto n = static_cast<std::int64_t>(c.ch.size());
    weight_data w;
    w.n = n;
    w.k = w.ld = 1;
    std::vector<float> bias;
    for (const channel& ch : c.ch) {
      w.values.push_back(static_cast<std::int8_t>(ch.w));
      w.scales.push_back(ch.sw);
      bias.push_back(ch.bias);
    }
    auto x = make_activations(
        dtype::uint8, 3, 1, 0, [](std::int64_t, std::int64_t) { return 1; }, 0);
    x.scales = {c.sx};
    const auto e = lowbit::epilogue::requantize(dtype::int8, c.sy, 0, bias);
    const auto want = run_reference<std::int8_t>(x, w, e);
    INFO(c.what << ": " << n << " channels");
    for (std::int64_t j = 0; j < n; ++j) {  // the closed form, as gemm.hpp states it
      const channel& ch = c.ch[idx(j)];
      const float sxw = c.sx * ch.sw;
      const float bq = std::nearbyint(ch.bias / sxw);
      const float q =
          std::nearbyint(static_cast<float>(ch.w + static_cast<std::int32_t>(bq)) * (sxw / c.sy));
      INFO("channel " << j << ": sw = " << ch.sw << ", acc = " << ch.w << ", bias = " << ch.bias);
      CHECK(want[idx(j)] == static_cast<std::int8_t>(std::max(-128.0f, std::min(127.0f, q))));
    }
    for (const auto& p : paths) {
      INFO("path " << p.name);
      CHECK(differences(run<std::int8_t>(p, x, w.pack(p.level), e), want, n) == "");
    }
  }
}

// =================================================================================
// Extreme values and int4 groups

TEST_CASE("extreme values: no int16 saturation, no sign-extension errors", "[gemm][isa]") {
  // Kernels built on vpmaddubsw add two u8 x s8 products into a saturating int16
  // (2 * 255 * 127 = 64770 > 32767), and a wrong sign extension turns -128 / -8 into
  // 128 / 8. All-extreme data at K of a few thousand shows both: every element must
  // equal the closed form K (x - zx)(w - zw), computed in int64.
  const auto paths = kernel_paths();
  struct act_case {
    dtype type;
    std::int32_t value, zero_point;
  };
  const act_case acts[] = {{dtype::uint8, 0, 0},     {dtype::uint8, 0, 255},
                           {dtype::uint8, 255, 0},   {dtype::uint8, 255, 255},
                           {dtype::uint8, 255, 128}, {dtype::int8, -128, 0},
                           {dtype::int8, 127, 0}};
  struct weight_case {
    wkind kind;
    std::int32_t value, zero_point;
    std::int64_t k, group_size;
  };
  std::vector<weight_case> wcases;
  for (std::int64_t k : {3001, 4096}) {
    wcases.push_back({wkind::s8_sym_channel, -128, 0, k, 0});
    wcases.push_back({wkind::s8_sym_channel, -127, 0, k, 0});  // no -128: AVX2 sign trick
    wcases.push_back({wkind::s8_affine_channel, -127, 127, k, 0});
    wcases.push_back({wkind::s8_sym_tensor, 127, 0, k, 0});
    wcases.push_back({wkind::s8_affine_channel, 127, -128, k, 0});
    wcases.push_back({wkind::s8_affine_channel, -128, 127, k, 0});
    wcases.push_back({wkind::s8_affine_tensor, 127, -128, k, 0});
  }
  for (std::int32_t v : {-8, 7}) {
    wcases.push_back({wkind::s4, v, 0, 2048, 32});
    wcases.push_back({wkind::s4, v, 0, 4096, 128});
  }
  // M = 9: a full + a partial tile for MR = 2, 4, 8 (and AVX2's wide route, M >= 8);
  // M = 5: AVX2's sign-trick route. N = 17: 2 panels.
  const std::int64_t N = 17;
  for (const std::int64_t M : {std::int64_t{9}, std::int64_t{5}})
    for (const weight_case& wc : wcases) {
      auto w = make_weights(
          wc.kind, N, wc.k, wc.group_size, [&](std::int64_t, std::int64_t) { return wc.value; }, 7);
      if (wc.kind == wkind::s8_affine_channel) w.zero_points.assign(idx(N), wc.zero_point);
      if (wc.kind == wkind::s8_affine_tensor) w.zero_points = {wc.zero_point};
      const auto packed = pack_for(paths, w);
      for (const act_case& ac : acts) {
        const auto x = make_activations(
            ac.type, M, wc.k, ac.zero_point, [&](std::int64_t, std::int64_t) { return ac.value; },
            8);
        const std::int64_t exact = wc.k * (ac.value - ac.zero_point) * (wc.value - wc.zero_point);
        REQUIRE(exact >= std::numeric_limits<std::int32_t>::min());
        REQUIRE(exact <= std::numeric_limits<std::int32_t>::max());
        const std::vector<std::int32_t> want(idx(M * N), static_cast<std::int32_t>(exact));
        INFO(describe(M, N, wc.k, x, wc.kind, wc.group_size)
             << ": x = " << ac.value << ", w = " << wc.value << ", zw = " << wc.zero_point);
        CHECK(differences(run_reference<std::int32_t>(x, w, lowbit::epilogue::int32()), want, N) ==
              "");
        for (std::size_t p = 0; p < paths.size(); ++p) {
          INFO("path " << paths[p].name);
          CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()),
                            want, N) == "");
        }
      }
    }

  // Every element independently at one end of its range (pairs of products with
  // opposite signs, extreme zero points): against the oracle.
  rng r(99);
  const auto pick = [&](std::int32_t lo, std::int32_t hi) { return r.next() % 2 ? lo : hi; };
  for (int wc = 0; wc < 4; ++wc) {
    // s8 with -128 (every panel on AVX2's int16 fallback), s8 in [-127, 127] (AVX2's
    // sign trick), affine s8, s4
    const wkind kind = wc < 2    ? wkind::s8_sym_channel
                       : wc == 2 ? wkind::s8_affine_channel
                                 : wkind::s4;
    const bool s4 = kind == wkind::s4;
    const std::int32_t lo = s4 ? -8 : wc == 1 ? -127 : -128, hi = s4 ? 7 : 127;
    const auto w = make_weights(
        kind, 33, 4096, 64, [&](std::int64_t, std::int64_t) { return pick(lo, hi); }, 11);
    const auto packed = pack_for(paths, w);
    for (const act_case& ac : {act_case{dtype::uint8, 0, 0}, act_case{dtype::uint8, 0, 255},
                               act_case{dtype::int8, 0, 0}}) {
      const bool u8 = ac.type == dtype::uint8;
      const auto x = make_activations(
          ac.type, 9, 4096, ac.zero_point,
          [&](std::int64_t, std::int64_t) { return u8 ? pick(0, 255) : pick(-128, 127); }, 12);
      const auto want = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
      INFO("random extremes: " << describe(9, 33, 4096, x, kind, 64));
      for (std::size_t p = 0; p < paths.size(); ++p) {
        INFO("path " << paths[p].name);
        CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()),
                          want, 33) == "");
      }
    }
  }
}

TEST_CASE("weights of -128: listed at pack time, fixed up or sent to the int16 kernel, exact",
          "[gemm][isa]") {
  // AVX2's vpmaddubsw sign trick cannot negate -128 (arch/avx2/gemm_tiles.hpp): packing
  // lists where -128 is, the tile adds the missing products back, and a panel with more
  // than K / 4 of them runs the int16 kernel. Extreme activations make any slip
  // visible: with x = a' - 128 = -128 and w = -128, vpsignb gives -128 instead of 128.
  const auto paths = kernel_paths();
  const std::int64_t N = 48, K = 1000;
  rng r(123);
  struct hot_case {
    std::int64_t channel;  // -1: none
    std::int64_t count;    // -128s in that channel, at K - 1, K - 2, ...
  };
  // K / 4 = 250 entries in a panel: still fixed up; 251: the int16 kernel
  for (const hot_case hc : {hot_case{-1, 0}, hot_case{0, 1}, hot_case{20, 3}, hot_case{47, 1},
                            hot_case{16, 250}, hot_case{31, 251}, hot_case{40, K}}) {
    const auto w = make_weights(
        wkind::s8_sym_channel, N, K, 0,
        [&](std::int64_t i, std::int64_t j) {
          if (i == hc.channel && j >= K - hc.count) return -128;
          return r.next() % 2 ? -127 : 127;
        },
        5);
    const auto packed = pack_for(paths, w);
    std::vector<std::uint32_t> offsets(4, 0), entries;
    for (std::int64_t j = K - hc.count; j < K; ++j)
      entries.push_back(static_cast<std::uint32_t>(j * 16 + hc.channel % 16));
    for (std::int64_t pn = 0; pn < 3; ++pn)
      offsets[idx(pn + 1)] =
          offsets[idx(pn)] + (hc.channel / 16 == pn ? static_cast<std::uint32_t>(hc.count) : 0u);
    for (std::size_t p = 0; p < paths.size(); ++p) {
      CHECK(packed[p].min_offsets() == offsets);
      CHECK(packed[p].min_entries() == entries);
    }
    // M = 9 runs AVX2's wide (int16) route, M = 3 its sign trick with the fix-up
    for (const std::int64_t M : {std::int64_t{9}, std::int64_t{3}})
      for (dtype at : {dtype::uint8, dtype::int8}) {
        const bool u8 = at == dtype::uint8;
        const auto x = make_activations(
            at, M, K, u8 ? 255 : 0,
            [&](std::int64_t, std::int64_t) {
              return r.next() % 2 ? (u8 ? 0 : -128) : (u8 ? 255 : 127);
            },
            6);
        const auto want = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
        INFO(hc.count << " x -128 in channel " << hc.channel << ", "
                      << describe(M, N, K, x, wkind::s8_sym_channel));
        for (std::size_t p = 0; p < paths.size(); ++p) {
          INFO("path " << paths[p].name);
          CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()),
                            want, N) == "");
        }
      }
  }
}

TEST_CASE("7-bit activations (every a' < 128) are exact on every path, any M", "[gemm][isa]") {
  // AVX2 feeds such calls straight to vpmaddubsw (s8_4x16c4__avx2_u7): |pair| <=
  // 2 * 127 * 128 fits int16 even next to -128 weights. One byte of 128 anywhere in
  // the call must send it back to the exact full-range routes.
  const auto paths = kernel_paths();
  const std::int64_t N = 35, K = 777;
  rng r(77);
  const auto w = make_weights(
      wkind::s8_affine_channel, N, K, 0,
      [&](std::int64_t, std::int64_t) {
        return r.next() % 3 == 0 ? -128 : (r.next() % 2 ? 127 : -127);
      },
      78);
  const auto packed = pack_for(paths, w);
  for (const std::int64_t M : {std::int64_t{1}, std::int64_t{3}, std::int64_t{9}, std::int64_t{20}})
    for (int last : {127, 128}) {  // 128: the last byte of the call leaves the 7-bit range
      const auto x = make_activations(
          dtype::uint8, M, K, 61,
          [&](std::int64_t i, std::int64_t j) {
            if (i == M - 1 && j == K - 1) return last;
            return r.next() % 2 ? 0 : 127;
          },
          79);
      const auto want = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
      INFO("last byte " << last << ", " << describe(M, N, K, x, wkind::s8_affine_channel));
      for (std::size_t p = 0; p < paths.size(); ++p) {
        INFO("path " << paths[p].name);
        CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()),
                          want, N) == "");
      }
    }
}

TEST_CASE("all_below_128 looks at every byte of every prepared row", "[gemm]") {
  std::vector<std::uint8_t> bytes(3 * 20, 127);
  lowbit::detail::prepared_activations a;
  a.data = bytes.data();
  a.m = 3;
  a.ld = 20;  // two 8-byte words and a 4-byte tail per row
  CHECK(lowbit::detail::all_below_128(a));
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = 128;
    INFO("byte " << i);
    CHECK_FALSE(lowbit::detail::all_below_128(a));
    bytes[i] = 0;
  }
  CHECK(lowbit::detail::all_below_128(a));
}

TEST_CASE("s4 group boundaries: every group has its own values and scale", "[gemm][isa]") {
  // Group g of channel n holds one value v(n, g) = ((5 g + 3 n) mod 16) - 8 (distinct
  // for the groups of a channel) and its own scale, so reading the wrong group's bytes,
  // column sums or scale changes the result.
  const auto paths = kernel_paths();
  const std::int64_t M = 9, N = 33;
  for (std::int64_t gs : {32, 64, 128}) {
    for (std::int64_t G : {1, 2, 3, 5, 8}) {
      const std::int64_t K = gs * G;
      const auto v = [&](std::int64_t n, std::int64_t g) {
        return static_cast<std::int32_t>((5 * g + 3 * n) % 16) - 8;
      };
      auto w = make_weights(
          wkind::s4, N, K, gs, [&](std::int64_t n, std::int64_t k) { return v(n, k / gs); }, 13);
      for (std::int64_t n = 0; n < N; ++n)
        for (std::int64_t g = 0; g < G; ++g)
          w.scales[idx(n * G + g)] =
              std::ldexp(0.01f + 0.001f * static_cast<float>(n), -static_cast<int>(g % 6));
      const auto packed = pack_for(paths, w);
      INFO("group_size=" << gs << " groups=" << G);

      // (a) random activations, int32 and f32 against the oracle
      for (dtype at : {dtype::uint8, dtype::int8}) {
        auto x = random_activations(at, M, K, 77, mix(gs, G), 1);
        x.scales = random_row_scales(M, mix(G, gs));
        INFO(describe(M, N, K, x, wkind::s4, gs));
        const auto want = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
        const auto fwant = run_reference<float>(x, w, lowbit::epilogue::f32());
        for (std::size_t p = 0; p < paths.size(); ++p) {
          INFO("path " << paths[p].name);
          CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()),
                            want, N) == "");
          CHECK(differences(run<float>(paths[p], x, packed[p], lowbit::epilogue::f32()), fwant,
                            N) == "");
        }
      }

      // (b) constant rows: closed forms acc = (c - zx) gs sum_g v(n, g) and
      // f32 = sx sum_g (c - zx) gs v(n, g) sw[n][g]
      auto x = make_activations(
          dtype::uint8, M, K, 100,
          [](std::int64_t m, std::int64_t) { return static_cast<std::int32_t>(m * 29 % 256); }, 14);
      x.scales = {0.02f};
      const std::vector<double> no_mag(idx(M * N), 0.0);
      for (std::size_t p = 0; p < paths.size(); ++p) {
        INFO("constant rows, path " << paths[p].name);
        const auto got = run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32());
        const auto fgot = run<float>(paths[p], x, packed[p], lowbit::epilogue::f32());
        for (std::int64_t m = 0; m < M; ++m)
          for (std::int64_t n = 0; n < N; ++n) {
            std::int64_t acc = 0;
            double f = 0.0, mag = 0.0;
            for (std::int64_t g = 0; g < G; ++g) {
              const std::int64_t acc_g = (m * 29 % 256 - 100) * gs * v(n, g);
              acc += acc_g;
              f += static_cast<double>(acc_g) * w.scale(n, g);
              mag += std::abs(static_cast<double>(acc_g)) * w.scale(n, g);
            }
            f *= 0.02;
            INFO("[" << m << "][" << n << "]");
            CHECK(got[idx(m * N + n)] == acc);
            CHECK(std::abs(fgot[idx(m * N + n)] - f) <=
                  std::ldexp((static_cast<double>(G) + 2.0) * 0.02 * mag, -20));
          }
      }
    }
  }

  // (c) groups that cancel in int32 but not once scaled: +7 in even groups, -7 in odd
  // ones, activations all 1. A kernel or driver that applies one scale to the whole K,
  // or the wrong group's scale, gets the f32 wrong while the int32 sum stays 0.
  for (std::int64_t gs : {32, 64, 128}) {
    const std::int64_t G = 4, K = gs * G;
    auto w = make_weights(
        wkind::s4, N, K, gs, [&](std::int64_t, std::int64_t k) { return k / gs % 2 ? -7 : 7; }, 15);
    for (std::int64_t i = 0; i < N * G; ++i)
      w.scales[idx(i)] = 0.01f * static_cast<float>(1 + i % G);
    auto x = make_activations(
        dtype::uint8, 3, K, 0, [](std::int64_t, std::int64_t) { return 1; }, 16);
    x.scales = {0.5f};
    const float exact = 0.5f * 7.0f * static_cast<float>(gs) * (0.01f - 0.02f + 0.03f - 0.04f);
    const auto packed = pack_for(paths, w);
    for (std::size_t p = 0; p < paths.size(); ++p) {
      INFO("cancelling groups, group_size=" << gs << ", path " << paths[p].name);
      const auto got = run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32());
      const auto fgot = run<float>(paths[p], x, packed[p], lowbit::epilogue::f32());
      for (std::size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i] == 0);
        CHECK(std::abs(fgot[i] - exact) <= std::abs(exact) * 1e-5f);
      }
    }
  }
}

// =================================================================================
// Threads and packing reuse

TEST_CASE("1, 2 and 3 threads (and more threads than panels) give identical results",
          "[gemm][isa]") {
  const auto paths = kernel_paths();
  const std::int64_t M = 33;
  for (std::int64_t N : {17, 129, 200}) {  // 2, 9 and 13 panels
    for (wkind kind : {wkind::s8_affine_channel, wkind::s4}) {
      // Large enough K that every thread count below is really used (useful_threads).
      const std::int64_t K = kind == wkind::s4 ? 2048 : 2044;
      REQUIRE(lowbit::detail::useful_threads(3, M, N, K) == 3);
      const auto w = random_weights(kind, N, K, 32, mix(N, 300));
      const auto packed = pack_for(paths, w);
      auto x = random_activations(dtype::uint8, M, K, 3, mix(N, 301));
      x.scales = random_row_scales(M, 302);
      std::vector<float> bias(idx(N));
      rng r(303);
      for (auto& b : bias) b = r.uniform(-2.0f, 2.0f);
      const auto e_f32 = lowbit::epilogue::f32(lowbit::span<const float>(bias)).relu();
      const auto want32 = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
      const auto wantf = run_reference<float>(x, w, e_f32);
      for (std::size_t p = 0; p < paths.size(); ++p) {
        INFO("N=" << N << ", " << name(kind) << ", path " << paths[p].name);
        const auto one32 = run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32(), 1);
        const auto onef = run<float>(paths[p], x, packed[p], e_f32, 1);
        CHECK(differences(one32, want32, N) == "");
        CHECK(differences(onef, wantf, N) == "");
        for (int t : {2, 3, 16}) {
          INFO(t << " threads");
          CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32(), t),
                            one32, N) == "");
          CHECK(differences(run<float>(paths[p], x, packed[p], e_f32, t), onef, N) == "");
        }
      }
      if (kind == wkind::s4) continue;
      auto xq = x;
      xq.scales = {0.02f};
      const auto e_q =
          lowbit::epilogue::requantize(dtype::int8, 0.05f, 3, lowbit::span<const float>(bias));
      const auto wantq = run_reference<std::int8_t>(xq, w, e_q);
      for (std::size_t p = 0; p < paths.size(); ++p) {
        INFO("N=" << N << ", requantize, path " << paths[p].name);
        for (int t : {1, 2, 3, 16}) {
          INFO(t << " threads");
          CHECK(differences(run<std::int8_t>(paths[p], xq, packed[p], e_q, t), wantq, N) == "");
        }
      }
    }
  }
}

TEST_CASE("thread count and row blocks follow the documented rules", "[gemm]") {
  using lowbit::detail::row_block;
  using lowbit::detail::useful_threads;
  // at least 2^18 multiply-adds per thread, never more than asked, never fewer than 1
  CHECK(useful_threads(2, 4, 64, 128) == 1);
  CHECK(useful_threads(2, 4, 512, 768) == 2);
  CHECK(useful_threads(16, 1, 16, 1) == 1);
  CHECK(useful_threads(16, 33, 17, 2048) == 4);
  CHECK(useful_threads(1, 2048, 2048, 2048) == 1);
  // balanced blocks, a multiple of the tile height, within the budget when possible
  CHECK(row_block(128, 4096, 7, 256 * 1024) == 49);  // 49 + 49 + 30, not 63 + 63 + 2
  CHECK(row_block(2048, 1024, 8, 256 * 1024) == 256);
  CHECK(row_block(5, 1 << 20, 8, 256 * 1024) == 8);  // one tile even past the budget
  CHECK(row_block(1, 64, 7, 512 * 1024) == 7);
}

TEST_CASE("one packed_weights serves calls with M = 1, 7, 64 and is never modified",
          "[gemm][isa]") {
  const auto paths = kernel_paths();
  const std::int64_t N = 40;
  for (wkind kind : {wkind::s8_affine_channel, wkind::s4}) {
    const std::int64_t K = kind == wkind::s4 ? 128 : 96;
    const auto w = random_weights(kind, N, K, 64, mix(400, static_cast<int>(kind)));
    const auto packed = pack_for(paths, w);
    const auto snapshot = packed;  // deep copies
    std::uint64_t seed = 410;
    for (std::int64_t M : {1, 7, 64, 1}) {
      auto x = random_activations(M == 7 ? dtype::int8 : dtype::uint8, M, K, 250, ++seed);
      x.scales = random_row_scales(M, ++seed);
      const auto want32 = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
      const auto wantf = run_reference<float>(x, w, lowbit::epilogue::f32());
      for (std::size_t p = 0; p < paths.size(); ++p) {
        INFO(describe(M, N, K, x, kind, 64) << ", path " << paths[p].name);
        CHECK(differences(run<std::int32_t>(paths[p], x, packed[p], lowbit::epilogue::int32()),
                          want32, N) == "");
        CHECK(differences(run<float>(paths[p], x, packed[p], lowbit::epilogue::f32()), wantf, N) ==
              "");
      }
    }
    for (std::size_t p = 0; p < paths.size(); ++p) {
      const auto& a = packed[p];
      const auto& b = snapshot[p];
      const auto bytes = idx(a.panels() * a.panel_bytes());
      CHECK(std::memcmp(a.data(), b.data(), bytes) == 0);
      CHECK(a.scales() == b.scales());
      CHECK(a.zero_points() == b.zero_points());
      CHECK(a.column_sums() == b.column_sums());
      if (a.format() == weight_format::s4)
        CHECK(std::memcmp(
                  a.panel_groups(0), b.panel_groups(0),
                  idx(a.panels() * a.groups()) * sizeof(lowbit::packed_weights::panel_group)) == 0);
    }
  }
}

TEST_CASE("pack_* default to best_isa() under the cap; a later cap does not change them",
          "[gemm][isa]") {
  const auto w = random_weights(wkind::s8_affine_channel, 20, 40, 0, 500);
  const auto x = random_activations(dtype::int8, 5, 40, 0, 501);
  const auto want = run_reference<std::int32_t>(x, w, lowbit::epilogue::int32());
  lowbit_test::for_each_isa([&](lowbit::isa i) {
    const auto pw = lowbit::packed_weights::pack_s8(
        w.values.data(), w.n, w.k, w.ld, lowbit::span<const float>(w.scales),
        lowbit::span<const std::int32_t>(w.zero_points));
    REQUIRE(pw.level() == i);
    lowbit::set_max_isa(lowbit::isa::portable);  // restored by for_each_isa
    std::vector<std::int32_t> y(idx(x.m * w.n));
    lowbit::gemm(x.view(), pw, lowbit::epilogue::int32(), lowbit::output(y.data(), w.n));
    CHECK(differences(y, want, w.n) == "");
    CHECK(pw.level() == i);
  });
}

TEST_CASE("M = 0 is valid and writes nothing", "[gemm]") {
  const auto w = random_weights(wkind::s8_sym_channel, 5, 8, 0, 600);
  const auto pw = w.pack(lowbit::best_isa());
  std::vector<std::int32_t> y(4, 42);
  const auto x = lowbit::activations::u8(nullptr, 0, 8, 8, 0);
  CHECK_NOTHROW(lowbit::gemm(x, pw, lowbit::epilogue::int32(), lowbit::output(y.data(), 5)));
  CHECK_NOTHROW(lowbit::gemm(x, pw, lowbit::epilogue::int32(),
                             lowbit::output(static_cast<std::int32_t*>(nullptr), 5)));
  CHECK(y == std::vector<std::int32_t>(4, 42));
}

// =================================================================================
// Packed layout, max_k

TEST_CASE("packed layout, column sums, scales and zero points are as documented", "[gemm]") {
  // s8: byte[p][k4][c][j] = W[16p + c][4 k4 + j], zero past K or N (packed_weights.hpp).
  const auto w = random_weights(wkind::s8_affine_tensor, 33, 10, 0, 700, 3);
  for (lowbit::isa level : lowbit::available_isas()) {
    INFO("s8, packed for " << lowbit::to_string(level));
    const auto pw = w.pack(level);
    REQUIRE(pw.level() == level);
    REQUIRE(pw.format() == weight_format::s8);
    REQUIRE(pw.n() == 33);
    REQUIRE(pw.k() == 10);
    REQUIRE(pw.panels() == 3);
    REQUIRE(pw.panel_bytes() == 3 * 64);
    REQUIRE(pw.groups() == 1);
    REQUIRE(pw.group_size() == 10);
    CHECK(pw.has_zero_points());
    bool layout_ok = true;
    for (std::int64_t p = 0; p < 3; ++p)
      for (std::int64_t k4 = 0; k4 < 3; ++k4)
        for (std::int64_t c = 0; c < 16; ++c)
          for (std::int64_t j = 0; j < 4; ++j) {
            const std::int64_t n = 16 * p + c, k = 4 * k4 + j;
            const auto want = n < 33 && k < 10 ? static_cast<std::uint8_t>(w.at(n, k)) : 0;
            layout_ok = layout_ok && pw.data()[p * pw.panel_bytes() + k4 * 64 + 4 * c + j] == want;
          }
    CHECK(layout_ok);
    for (std::int64_t n = 0; n < 33; ++n) {
      std::int32_t sum = 0;
      for (std::int64_t k = 0; k < 10; ++k) sum += w.at(n, k);
      CHECK(pw.column_sums()[idx(n)] == sum);
      CHECK(pw.scales()[idx(n)] == w.scales[0]);
      CHECK(pw.zero_points()[idx(n)] == w.zero_points[0]);
    }
  }
  // s4: byte[p][k8][c][j] = (W[16p + c][8 k8 + j] + 8) | (W[16p + c][8 k8 + 4 + j] + 8) << 4,
  // padded channels hold w = 0 (0x88)
  const auto w4 = random_weights(wkind::s4, 20, 64, 32, 701);
  for (lowbit::isa level : lowbit::available_isas()) {
    INFO("s4, packed for " << lowbit::to_string(level));
    const auto pw = w4.pack(level);
    REQUIRE(pw.format() == weight_format::s4);
    REQUIRE(pw.panels() == 2);
    REQUIRE(pw.panel_bytes() == 8 * 64);
    REQUIRE(pw.groups() == 2);
    REQUIRE(pw.group_size() == 32);
    CHECK_FALSE(pw.has_zero_points());
    bool layout_ok = true;
    for (std::int64_t c = 0; c < 32; ++c)
      for (std::int64_t k8 = 0; k8 < 8; ++k8)
        for (std::int64_t j = 0; j < 4; ++j) {
          const auto want = static_cast<std::uint8_t>(
              c < 20 ? (w4.at(c, 8 * k8 + j) + 8) | (w4.at(c, 8 * k8 + 4 + j) + 8) << 4 : 0x88);
          layout_ok = layout_ok &&
                      pw.data()[(c / 16) * pw.panel_bytes() + k8 * 64 + (c % 16) * 4 + j] == want;
        }
    CHECK(layout_ok);
    CHECK(pw.column_sums().empty());       // s4 keeps its sums per panel and group
    for (std::int64_t n = 0; n < 32; ++n)  // 20 channels, padded to 2 panels of 16
      for (std::int64_t g = 0; g < 2; ++g) {
        const auto& terms = pw.panel_groups(n / 16)[g];
        std::int32_t sum = 0;
        if (n < 20)
          for (std::int64_t k = 32 * g; k < 32 * (g + 1); ++k) sum += w4.at(n, k);
        CHECK(terms.column_sums[n % 16] == sum);
        CHECK(terms.scales[n % 16] == (n < 20 ? w4.scale(n, g) : 0.0f));
        if (n < 20) CHECK(pw.scales()[idx(n * 2 + g)] == w4.scale(n, g));
      }
  }
}

TEST_CASE("max_k: the documented values, K + 1 rejected, exact at K = max_k", "[gemm][isa]") {
  STATIC_REQUIRE(lowbit::max_k(weight_format::s8) == 65793);
  STATIC_REQUIRE(lowbit::max_k(weight_format::s8, true) == 33025);
  // packed_weights.hpp documents 1052689 for s4, but floor((2^31 - 1) / 2040) is 1052688
  // (1052689 * 2040 = 2147485560 overflows int32); max_k() computes the right value.
  STATIC_REQUIRE(lowbit::max_k(weight_format::s4) == 1052688);
  // floor((2^31 - 1) / max |product|): one more step would overflow
  const std::int64_t i32 = std::numeric_limits<std::int32_t>::max();
  CHECK((lowbit::max_k(weight_format::s8) + 1) * 255 * 128 > i32);
  CHECK((lowbit::max_k(weight_format::s8, true) + 1) * 255 * 255 > i32);
  CHECK((lowbit::max_k(weight_format::s4) + 1) * 255 * 8 > i32);

  const std::vector<float> one = {1.0f};
  {
    const std::int64_t k = 65794;
    const std::vector<std::int8_t> v(idx(k), 1);
    CHECK_THROWS_WITH(lowbit::packed_weights::pack_s8(v.data(), 1, k, k, one),
                      Contains("packed_weights::pack_s8: K = 65794 exceeds max_k = 65793 (int32 "
                               "accumulation would overflow)"));
    CHECK_NOTHROW(lowbit::packed_weights::pack_s8(v.data(), 1, k - 1, k - 1, one));
    const std::vector<std::int32_t> zp = {1}, zp0 = {0};
    CHECK_THROWS_WITH(lowbit::packed_weights::pack_s8(v.data(), 1, 33026, 33026, one, zp),
                      Contains("K = 33026 exceeds max_k = 33025"));
    CHECK_NOTHROW(lowbit::packed_weights::pack_s8(v.data(), 1, 33025, 33025, one, zp));
    // all-zero zero points are the symmetric format, with the symmetric limit
    CHECK_NOTHROW(lowbit::packed_weights::pack_s8(v.data(), 1, 33026, 33026, one, zp0));
  }
  {
    const std::int64_t k = 1052704;  // the first multiple of 32 above max_k
    const std::vector<std::uint8_t> nib(idx(k / 2), 0x11);
    const std::vector<float> scales(idx(k / 32), 1.0f);
    CHECK_THROWS_WITH(lowbit::packed_weights::pack_s4(nib.data(), 1, k, 32, scales),
                      Contains("packed_weights::pack_s4: K = 1052704 exceeds max_k = 1052688"));
  }

  // At K = max_k, with every value at the end of its range, every kernel and the
  // wrap-around zero-point corrections must produce exactly the int64 value
  // K (x - zx)(w - zw); the largest are within one product of the int32 limits.
  const auto paths = kernel_paths();
  struct edge {
    wkind kind;
    std::int64_t m, n, k;
    dtype type;
    std::int32_t x, zx, w, zw;
  };
  const std::int64_t k8 = lowbit::max_k(weight_format::s8),
                     k8z = lowbit::max_k(weight_format::s8, true);
  const std::int64_t k4 = lowbit::max_k(weight_format::s4) / 128 * 128;  // 1052672
  const edge edges[] = {
      {wkind::s8_sym_channel, 3, 17, k8, dtype::uint8, 255, 0, -128, 0},        // -2147483520
      {wkind::s8_sym_channel, 3, 17, k8, dtype::uint8, 0, 255, -128, 0},        // +2147483520
      {wkind::s8_sym_channel, 3, 17, k8, dtype::uint8, 0, 255, 127, 0},         // -2130706305
      {wkind::s8_sym_channel, 3, 17, k8, dtype::int8, -128, 0, -128, 0},        // +1077952512
      {wkind::s8_affine_channel, 3, 17, k8z, dtype::uint8, 255, 0, 127, -128},  // +2147450625
      {wkind::s8_affine_channel, 3, 17, k8z, dtype::uint8, 0, 255, 127, -128},  // -2147450625
      {wkind::s8_affine_channel, 3, 17, k8z, dtype::int8, -128, 0, 127, -128},  // -1077936000
      // s4: M = N = 1 keeps the 1M-deep case cheap for the -O0 oracle and packing
      {wkind::s4, 1, 1, k4, dtype::uint8, 255, 0, -8, 0},  // -2147450880
      {wkind::s4, 1, 1, k4, dtype::uint8, 0, 255, -8, 0},  // +2147450880
  };
  for (const edge& c : edges) {
    const std::int64_t exact = c.k * (c.x - c.zx) * (c.w - c.zw);
    auto w = make_weights(
        c.kind, c.n, c.k, 128, [&](std::int64_t, std::int64_t) { return c.w; }, 800);
    if (c.kind == wkind::s8_affine_channel) w.zero_points.assign(idx(c.n), c.zw);
    const auto x = make_activations(
        c.type, c.m, c.k, c.zx, [&](std::int64_t, std::int64_t) { return c.x; }, 801);
    INFO(describe(c.m, c.n, c.k, x, c.kind, 128)
         << ": x = " << c.x << ", w = " << c.w << ", zw = " << c.zw << ", exact = " << exact);
    REQUIRE(exact >= std::numeric_limits<std::int32_t>::min());
    REQUIRE(exact <= i32);
    const std::vector<std::int32_t> want(idx(c.m * c.n), static_cast<std::int32_t>(exact));
    CHECK(differences(run_reference<std::int32_t>(x, w, lowbit::epilogue::int32()), want, c.n) ==
          "");
    for (const auto& p : paths) {
      INFO("path " << p.name);
      CHECK(differences(run<std::int32_t>(p, x, w.pack(p.level), lowbit::epilogue::int32()), want,
                        c.n) == "");
    }
  }
}

// =================================================================================
// Errors

TEST_CASE("bad input throws lowbit::error naming the problem and writes nothing",
          "[gemm][errors]") {
  const std::int64_t M = 3, N = 17, K = 64;
  const auto w = random_weights(wkind::s8_sym_channel, N, K, 0, 900);
  const auto w4 = random_weights(wkind::s4, N, K, 32, 901);
  const auto pw = w.pack(lowbit::best_isa());
  const auto pw4 = w4.pack(lowbit::best_isa());
  auto xd = random_activations(dtype::uint8, M, K, 10, 902);
  const std::vector<float> sx = {0.1f}, sx3 = {0.1f, 0.2f, 0.3f}, sx2 = {0.1f, 0.2f};
  const std::vector<float> bias(idx(N), 0.5f), bias3(3, 0.5f);
  const auto x = lowbit::activations::u8(xd.bytes.data(), M, K, K, 10, sx);
  const auto xs8 =
      lowbit::activations::s8(reinterpret_cast<const std::int8_t*>(xd.bytes.data()), M, K, K, sx);

  std::vector<std::int32_t> y32(idx(M * N), 0x5A5A5A5A);
  std::vector<float> yf(idx(M * N), -7.25f);
  std::vector<std::uint8_t> yu(idx(M * N), 0xA7);
  std::vector<std::int8_t> ys(idx(M * N), -77);
  const auto o32 = lowbit::output(y32.data(), N);
  const auto of = lowbit::output(yf.data(), N);
  const auto ou = lowbit::output(yu.data(), N);
  const auto os = lowbit::output(ys.data(), N);
  const auto untouched = [&] {
    return y32 == std::vector<std::int32_t>(idx(M * N), 0x5A5A5A5A) &&
           yf == std::vector<float>(idx(M * N), -7.25f) &&
           yu == std::vector<std::uint8_t>(idx(M * N), 0xA7) &&
           ys == std::vector<std::int8_t>(idx(M * N), -77);
  };
  using E = lowbit::epilogue;
  const auto f32 = E::f32();
  const auto rq = E::requantize(dtype::uint8, 0.5f, 10);
  const auto gemm = [](const lowbit::activations& a, const lowbit::packed_weights& p, const E& e,
                       lowbit::output y,
                       lowbit::gemm_context ctx = {}) { lowbit::gemm(a, p, e, y, ctx); };
  const auto with = [&](auto change) {
    auto a = x;
    change(a);
    return a;
  };

  SECTION("shapes, strides and pointers") {
    CHECK_THROWS_WITH(gemm(x, lowbit::packed_weights(), E::int32(), o32),
                      Contains("gemm: the packed_weights object is empty"));
    CHECK_THROWS_WITH(gemm(with([](auto& a) { a.k = 63; }), pw, E::int32(), o32),
                      Contains("gemm: activations have K = 63 but weights have K = 64"));
    CHECK_THROWS_WITH(gemm(with([](auto& a) { a.ld = 60; }), pw, E::int32(), o32),
                      Contains("gemm: activation row stride 60 < K = 64"));
    CHECK_THROWS_WITH(gemm(x, pw, E::int32(), lowbit::output(y32.data(), 16)),
                      Contains("gemm: output row stride 16 < N = 17"));
    CHECK_THROWS_WITH(gemm(with([](auto& a) { a.m = -1; }), pw, E::int32(), o32),
                      Contains("gemm: M = -1 is negative"));
    CHECK_THROWS_WITH(gemm(with([](auto& a) { a.data = nullptr; }), pw, E::int32(), o32),
                      Contains("gemm: activation data is null"));
    CHECK_THROWS_WITH(
        gemm(x, pw, E::int32(), lowbit::output(static_cast<std::int32_t*>(nullptr), N)),
        Contains("gemm: output data is null"));
    CHECK_THROWS_WITH(gemm(x, pw, E::int32(), o32, lowbit::gemm_context{0}),
                      Contains("gemm: threads must be >= 1, got 0"));
    CHECK_THROWS_WITH(gemm(x, pw, E::int32(), o32, lowbit::gemm_context{-2}),
                      Contains("gemm: threads must be >= 1, got -2"));
    for (lowbit::isa i : kAllIsas) {
      if (lowbit::is_available(i)) continue;
      const auto bad = w.pack(i);  // packing does not run kernels; gemm refuses
      CHECK_THROWS_WITH(gemm(x, bad, E::int32(), o32),
                        Contains(std::string("gemm: weights were packed for isa ") +
                                 lowbit::to_string(i) + ", not available here"));
    }
  }
  SECTION("activation types and zero points") {
    CHECK_THROWS_WITH(gemm(with([](auto& a) { a.type = dtype::int4; }), pw, E::int32(), o32),
                      Contains("gemm: activations must be uint8 or int8, got int4"));
    auto z = xs8;
    z.zero_point = 5;
    CHECK_THROWS_WITH(
        gemm(z, pw, E::int32(), o32),
        Contains("gemm: int8 activations are symmetric (zero point 0), got zero point 5"));
    CHECK_THROWS_WITH(gemm(with([](auto& a) { a.zero_point = 256; }), pw, E::int32(), o32),
                      Contains("gemm: uint8 activation zero point 256 outside [0, 255]"));
    CHECK_THROWS_WITH(gemm(with([](auto& a) { a.zero_point = -1; }), pw, E::int32(), o32),
                      Contains("gemm: uint8 activation zero point -1 outside [0, 255]"));
  }
  SECTION("activation scales and bias") {
    CHECK_THROWS_WITH(gemm(with([&](auto& a) { a.scales = sx2; }), pw, f32, of),
                      Contains("gemm: 2 activation scales for M = 3 (need 1 or M)"));
    CHECK_THROWS_WITH(gemm(with([&](auto& a) { a.scales = {}; }), pw, f32, of),
                      Contains("gemm: 0 activation scales for M = 3 (need 1 or M)"));
    CHECK_THROWS_WITH(gemm(with([&](auto& a) { a.scales = sx2; }), pw, rq, ou),
                      Contains("gemm: 2 activation scales for M = 3 (need 1 or M)"));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    for (const auto& [bad, text] : {std::pair<float, const char*>{0.0f, "scale[1] = 0 must"},
                                    {-0.5f, "scale[1] = -0.5 must"},
                                    {nan, "scale[1] = nan must"},
                                    {inf, "scale[1] = inf must"}}) {
      std::vector<float> s = sx3;
      s[1] = bad;
      CHECK_THROWS_WITH(gemm(with([&](auto& a) { a.scales = s; }), pw, f32, of),
                        Contains(std::string("gemm: activation ") + text + " be finite and > 0"));
    }
    CHECK_THROWS_WITH(gemm(x, pw, E::f32(bias3), of),
                      Contains("gemm: bias has 3 entries for N = 17"));
    CHECK_THROWS_WITH(gemm(x, pw, E::requantize(dtype::uint8, 0.5f, 10, bias3), ou),
                      Contains("gemm: bias has 3 entries for N = 17"));
    std::vector<float> b = bias;
    b[4] = inf;
    CHECK_THROWS_WITH(gemm(x, pw, E::f32(b), of), Contains("gemm: bias[4] = inf is not finite"));
    b[4] = nan;
    CHECK_THROWS_WITH(gemm(x, pw, E::f32(b), of), Contains("gemm: bias[4] = nan is not finite"));
  }
  SECTION("epilogue and output types") {
    CHECK_THROWS_WITH(gemm(x, pw, E::int32(), of),
                      Contains("gemm: the int32 epilogue needs an int32_t output"));
    CHECK_THROWS_WITH(gemm(x, pw, f32, o32),
                      Contains("gemm: the f32 epilogue needs a float output"));
    CHECK_THROWS_WITH(gemm(x, pw, f32, ou),
                      Contains("gemm: the f32 epilogue needs a float output"));
    CHECK_THROWS_WITH(gemm(x, pw, rq, os),
                      Contains("gemm: requantize to uint8 needs a matching output buffer"));
    CHECK_THROWS_WITH(gemm(x, pw, rq, of),
                      Contains("gemm: requantize to uint8 needs a matching output buffer"));
    CHECK_THROWS_WITH(gemm(x, pw, E::requantize(dtype::int8, 0.5f, 0), ou),
                      Contains("gemm: requantize to int8 needs a matching output buffer"));
    CHECK_THROWS_WITH(gemm(x, pw, E::requantize(dtype::int4, 0.5f, 0), ou),
                      Contains("gemm: requantize output must be uint8 or int8, got int4"));
    CHECK_THROWS_WITH(gemm(x, pw, E::f32().clamp(1.0f, -1.0f), of),
                      Contains("gemm: clamp [1, -1] is empty or NaN"));
    CHECK_THROWS_WITH(
        gemm(x, pw, E::f32().clamp(std::numeric_limits<float>::quiet_NaN(), 1.0f), of),
        Contains("is empty or NaN"));
  }
  SECTION("requantize") {
    CHECK_THROWS_WITH(gemm(x, pw4, rq, ou),
                      Contains("gemm: the requantize epilogue needs s8 weights"));
    CHECK_THROWS_WITH(gemm(with([&](auto& a) { a.scales = sx3; }), pw, rq, ou),
                      Contains("gemm: requantize needs a per-tensor activation scale, got 3"));
    CHECK_THROWS_WITH(gemm(x, pw, E::requantize(dtype::uint8, 0.0f, 10), ou),
                      Contains("gemm: requantize output scale 0 must be finite and > 0"));
    CHECK_THROWS_WITH(
        gemm(x, pw, E::requantize(dtype::uint8, std::numeric_limits<float>::infinity(), 10), ou),
        Contains("gemm: requantize output scale inf must be finite and > 0"));
    CHECK_THROWS_WITH(gemm(x, pw, E::requantize(dtype::uint8, 0.5f, 256), ou),
                      Contains("gemm: requantize output zero point 256 outside uint8 range"));
    CHECK_THROWS_WITH(gemm(x, pw, E::requantize(dtype::int8, 0.5f, -129), os),
                      Contains("gemm: requantize output zero point -129 outside int8 range"));
    const std::vector<float> huge = {3e38f}, tiny = {1e-30f};
    CHECK_THROWS_WITH(gemm(with([&](auto& a) { a.scales = huge; }), pw,
                           E::requantize(dtype::uint8, 1e-3f, 10), ou),
                      Contains("gemm: requantize multiplier for channel 0 = inf is not finite"));
    CHECK_THROWS_WITH(gemm(with([&](auto& a) { a.scales = tiny; }), pw,
                           E::requantize(dtype::uint8, 1e30f, 10), ou),
                      Contains("gemm: requantize multiplier for channel 0 = 0 is not finite"));
    std::vector<float> big = bias;
    big[2] = 1e9f;
    CHECK_THROWS_WITH(gemm(x, pw, E::requantize(dtype::uint8, 0.5f, 10, big), ou),
                      Contains("gemm: bias[2] = 1e+09 is out of int32 range once quantized"));
  }
  CHECK(untouched());

  SECTION("pack_s8") {
    const std::vector<std::int8_t> v(12, 1);
    const std::vector<float> s1 = {0.1f}, s3 = {0.1f, 0.2f, 0.3f};
    using P = lowbit::packed_weights;
    CHECK_THROWS_WITH(P::pack_s8(v.data(), 0, 4, 4, s1),
                      Contains("packed_weights::pack_s8: empty weights [0 x 4]"));
    CHECK_THROWS_WITH(P::pack_s8(v.data(), 3, 4, 3, s1),
                      Contains("packed_weights::pack_s8: row stride 3 < K = 4"));
    CHECK_THROWS_WITH(P::pack_s8(nullptr, 3, 4, 4, s1),
                      Contains("packed_weights::pack_s8: weight pointer is null"));
    CHECK_THROWS_WITH(P::pack_s8(v.data(), 3, 4, 4, sx2),
                      Contains("packed_weights::pack_s8: 2 scales (need 1 or n)"));
    std::vector<float> s = s3;
    s[1] = 0.0f;
    CHECK_THROWS_WITH(P::pack_s8(v.data(), 3, 4, 4, s),
                      Contains("packed_weights::pack_s8: scale[1] = 0 must be finite and > 0"));
    s[1] = std::numeric_limits<float>::quiet_NaN();
    CHECK_THROWS_WITH(P::pack_s8(v.data(), 3, 4, 4, s), Contains("scale[1] = nan must be finite"));
    const std::vector<std::int32_t> zp2 = {1, 2}, zp_hi = {0, 128, 0}, zp_lo = {-129};
    CHECK_THROWS_WITH(
        P::pack_s8(v.data(), 3, 4, 4, s3, zp2),
        Contains("packed_weights::pack_s8: 2 zero points for n = 3 (need 0, 1 or n)"));
    CHECK_THROWS_WITH(P::pack_s8(v.data(), 3, 4, 4, s3, zp_hi),
                      Contains("packed_weights::pack_s8: zero_point[1] = 128 outside [-128, 127]"));
    CHECK_THROWS_WITH(
        P::pack_s8(v.data(), 3, 4, 4, s3, zp_lo),
        Contains("packed_weights::pack_s8: zero_point[0] = -129 outside [-128, 127]"));
  }
  SECTION("pack_s4") {
    const std::vector<std::uint8_t> nib(96, 0x11);  // [2 x 96]
    const std::vector<float> s6(6, 0.1f), s5(5, 0.1f);
    using P = lowbit::packed_weights;
    CHECK_THROWS_WITH(P::pack_s4(nib.data(), 2, 96, 48, s6),
                      Contains("packed_weights::pack_s4: group_size must be a positive multiple "
                               "of 32, got 48"));
    CHECK_THROWS_WITH(P::pack_s4(nib.data(), 2, 96, 0, s6),
                      Contains("group_size must be a positive multiple of 32, got 0"));
    CHECK_THROWS_WITH(P::pack_s4(nib.data(), 2, 96, -32, s6),
                      Contains("group_size must be a positive multiple of 32, got -32"));
    CHECK_THROWS_WITH(P::pack_s4(nib.data(), 2, 96, 64, s6),
                      Contains("packed_weights::pack_s4: group_size 64 does not divide K = 96"));
    CHECK_THROWS_WITH(P::pack_s4(nib.data(), 2, 96, 32, s5),
                      Contains("packed_weights::pack_s4: 5 scales for [2 x 3] groups"));
    CHECK_THROWS_WITH(P::pack_s4(nib.data(), 2, 96, 32, sx),
                      Contains("packed_weights::pack_s4: 1 scales for [2 x 3] groups"));
    std::vector<float> s = s6;
    s[3] = -1.0f;
    CHECK_THROWS_WITH(P::pack_s4(nib.data(), 2, 96, 32, s),
                      Contains("packed_weights::pack_s4: scale[3] = -1 must be finite and > 0"));
    CHECK_THROWS_WITH(P::pack_s4(nib.data(), 0, 96, 32, s6),
                      Contains("packed_weights::pack_s4: empty weights [0 x 96]"));
    CHECK_THROWS_WITH(P::pack_s4(nullptr, 2, 96, 32, s6),
                      Contains("packed_weights::pack_s4: weight pointer is null"));
  }
}

TEST_CASE("requantize adds the quantized bias in int64 (acc + bias_q past INT32_MAX)",
          "[gemm][requantize]") {
  // Regression: at K = max_k(s8) with extreme data, acc = 255 * 127 * K is near 2^31, and
  // adding bias_q = 2^29 leaves the int32 range. The exact result is
  // round((255 * 127 * 65793 + 2^29) * 1e-9) = round(2.6676) = 3.
  const std::int64_t K = lowbit::max_k(lowbit::weight_format::s8);
  std::vector<std::uint8_t> x(static_cast<std::size_t>(K), 255);
  std::vector<std::int8_t> w(static_cast<std::size_t>(K), 127);
  const std::vector<float> sw = {1.0f}, sx = {1.0f}, bias = {536870912.0f};
  const auto pw = lowbit::packed_weights::pack_s8(w.data(), 1, K, K, lowbit::span<const float>(sw));
  lowbit::reference::weights rw;
  rw.values = w.data();
  rw.n = 1;
  rw.k = K;
  rw.ld = K;
  rw.scales = sw;
  const auto xa = lowbit::activations::u8(x.data(), 1, K, K, 0, lowbit::span<const float>(sx));
  const auto e =
      lowbit::epilogue::requantize(lowbit::dtype::int8, 1e9f, 0, lowbit::span<const float>(bias));
  // 16 bytes: GCC 12 -O3 -Warray-bounds checks the dead int32/f32 branches of the
  // epilogue switch against the buffer's size
  std::vector<std::int8_t> y(16), yr(16);
  lowbit::gemm(xa, pw, e, lowbit::output(y.data(), 1));
  lowbit::reference::gemm(xa, rw, e, lowbit::output(yr.data(), 1));
  CHECK(int{y[0]} == 3);
  CHECK(int{yr[0]} == 3);
}

TEST_CASE("epilogue clamp intersects with relu in either order", "[gemm]") {
  const auto a = lowbit::epilogue::f32().relu().clamp(-1.0f, 6.0f);
  const auto b = lowbit::epilogue::f32().clamp(-1.0f, 6.0f).relu();
  CHECK(a.lo == 0.0f);
  CHECK(a.hi == 6.0f);
  CHECK(b.lo == 0.0f);
  CHECK(b.hi == 6.0f);
}
