// SPDX-License-Identifier: Apache-2.0
// Every entry of every kernel table this CPU can run, against lowbit::reference and the
// scalar rules (ruy's all-paths test); dispatch decided once per object; layer forward
// calls that do not allocate.
#include <catch2/catch.hpp>

#include "support/random.hpp"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "lowbit/arch/tables.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/layers/linear.hpp"
#include "lowbit/pack.hpp"
#include "lowbit/reference/gemm.hpp"
#include "lowbit/reference/quantize.hpp"

// ---- a counting global operator new (all forms route here) -----------------------
// GCC 12 sees through the inlined replacement and flags free() of operator new's
// memory as mismatched: both sides here are malloc / free, so it is not.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<long> g_allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, std::align_val_t a) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return ::operator new(n, a); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return ::operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return ::operator new(n, std::nothrow);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using Catch::Contains;
using lowbit::matrixf;
using lowbit::detail::kernel_table;

namespace {

/// The tables to test: every available isa's, plus the EVEX build of the avx_vnni
/// body where AVX-512 VNNI runs.
std::vector<const kernel_table*> runnable_tables() {
  std::vector<const kernel_table*> out;
  for (lowbit::isa i : lowbit::all_isas) {
    if (!lowbit::is_available(i)) {
      WARN("isa " << lowbit::to_string(i) << " not available on this CPU/OS: not tested here");
      continue;
    }
    out.push_back(&lowbit::detail::table_for(i));
  }
#if LOWBIT_HAVE_X86_DISPATCH
  if (lowbit::is_available(lowbit::isa::avx512_vnni))
    out.push_back(&lowbit::arch::avx512_vnni::ymm_test_table);
#endif
  return out;
}

std::string name_of(const kernel_table& t) {
  return std::string(lowbit::to_string(t.level)) + " (" + t.gemm.s8_name + ")";
}

/// Floats with the values quantizers get wrong first: ties at .5, huge, tiny, +-0.
std::vector<float> tricky_floats(std::size_t n, std::uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 40.0f);
  const float special[] = {0.5f,   -0.5f, 1.5f, -2.5f,  127.5f, -128.5f, 1e30f, -1e30f,
                           1e-30f, -0.0f, 0.0f, 255.5f, 3.5f,   -3.5f,   8.5f,  -8.5f};
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = (i % 5 == 0) ? special[(i / 5) % 16] : d(g);
  return v;
}

}  // namespace

TEST_CASE("table_for maps every isa to its own table, once", "[kernel_table][isa]") {
  for (lowbit::isa i : lowbit::all_isas) {
    const kernel_table& t = lowbit::detail::table_for(i);
#if LOWBIT_HAVE_X86_DISPATCH
    CHECK(t.level == i);
#else
    CHECK(t.level == lowbit::isa::portable);
#endif
    CHECK(&t == &lowbit::detail::table_for(i));
    CHECK(t.gemm.s8_name != nullptr);
    CHECK(t.weight_only.s8_name != nullptr);
    CHECK(t.prepare_row != nullptr);
    for (int r = 1; r <= lowbit::detail::kMaxTileRows; ++r) {
      INFO(lowbit::to_string(i) << " rows " << r);
      for (int p = 1; p <= lowbit::detail::kMaxTilePanels; ++p)
        CHECK((t.gemm.s8_tile[r - 1][p - 1] != nullptr) ==
              (r <= t.gemm.s8_mr && p <= t.gemm.s8_panels));
      CHECK((t.gemm.s4_tile[r - 1][0] != nullptr) == (r <= t.gemm.s4_mr));
      CHECK((t.gemm.s4_tile[r - 1][1] != nullptr) == (r <= t.gemm.s4_mr));
      CHECK((t.weight_only.s8[r - 1] != nullptr) == (r <= t.weight_only.mr));
      CHECK((t.gemm.s8_wide_tile[r - 1] != nullptr) == (r <= t.gemm.s8_wide_mr));
    }
    // the wide route comes whole or not at all; gemm_kernels() reports the table
    const bool wide = t.gemm.s8_wide_mr > 0;
    CHECK((t.gemm.s8_wide_name != nullptr) == wide);
    CHECK((t.gemm.widen_rows != nullptr) == wide);
    CHECK((t.gemm.widen_panel != nullptr) == wide);
    CHECK((t.gemm.wide_min_rows > 0) == wide);
    const lowbit::gemm_kernel_names names = lowbit::gemm_kernels(i);
    CHECK(names.s8 == t.gemm.s8_name);
    CHECK(names.s8_wide == t.gemm.s8_wide_name);
    CHECK(names.s4 == t.gemm.s4_name);
  }
#if LOWBIT_HAVE_X86_DISPATCH
  CHECK(std::string(lowbit::gemm_kernels(lowbit::isa::avx2).s8) == "s8_4x16c4__avx2_sign");
  CHECK(std::string(lowbit::gemm_kernels(lowbit::isa::avx2).s8_wide) == "s8_6x16c2__avx2_i16");
  CHECK(lowbit::gemm_kernels(lowbit::isa::avx2).s8_wide_min_rows == 8);
#endif
}

TEST_CASE("every quantize, dequantize, scan, pack and prepare entry matches the scalar rule",
          "[kernel_table][quantize]") {
  using lowbit::dtype;
  using lowbit::detail::qstore;
  for (const kernel_table* kt : runnable_tables()) {
    INFO("table " << name_of(*kt));
    const std::vector<float> x = tricky_floats(203, 7);
    for (std::int64_t n : {0, 1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 130, 203}) {
      INFO("n = " << n);
      // quantize: per store kind, scalar and per-element parameters, NaN on or off
      struct kind {
        qstore st;
        dtype t;
        float zp, lo, hi;
      };
      for (const kind& k :
           {kind{qstore::s8, dtype::int8, 0, -128, 127},
            kind{qstore::u8, dtype::uint8, 128, 1, 255}, kind{qstore::u8, dtype::uint8, 3, 0, 255},
            kind{qstore::s4, dtype::int4, 0, -8, 7}, kind{qstore::s4, dtype::uint4, 8, 0, 15}}) {
        for (int vec = 0; vec < 2; ++vec)
          for (int nan = 0; nan < 2; ++nan) {
            std::vector<float> inv(static_cast<std::size_t>(n) + 1), zp(inv.size());
            for (std::size_t i = 0; i < inv.size(); ++i) {
              inv[i] = 1.0f / (0.25f + 0.125f * static_cast<float>(i % 7));
              zp[i] = k.zp;
            }
            const float c_inv = 1.0f / 0.37f;
            const std::size_t bytes = k.st == qstore::s4 ? (n + 1) / 2 : n;
            std::vector<std::uint8_t> got(bytes + 1, 0xAB), want(bytes + 1, 0xAB);
            if (k.st == qstore::s4) std::fill(got.begin(), got.begin() + bytes, 0);
            if (k.st == qstore::s4) std::fill(want.begin(), want.begin() + bytes, 0);
            kt->quant.quantize[static_cast<int>(k.st)][vec][nan](
                x.data(), n, inv.data(), zp.data(), lowbit::detail::qconst{c_inv, k.zp, k.lo, k.hi},
                got.data());
            for (std::int64_t i = 0; i < n; ++i) {
              const float s_inv = vec ? inv[static_cast<std::size_t>(i)] : c_inv;
              const std::int32_t q = lowbit::detail::quantize_one(
                  x[static_cast<std::size_t>(i)], s_inv, static_cast<std::int32_t>(k.zp),
                  static_cast<std::int32_t>(k.lo), static_cast<std::int32_t>(k.hi));
              lowbit::detail::store_stored(k.t, want.data(), i, q);
            }
            INFO("store " << static_cast<int>(k.st) << " vec " << vec << " nan " << nan);
            CHECK(got == want);  // including the guard byte past the end
          }
      }
      // dequantize: every dtype, scalar and per-element parameters
      for (dtype t : {dtype::int8, dtype::uint8, dtype::int4, dtype::uint4}) {
        std::vector<std::uint8_t> q(static_cast<std::size_t>(n) + 1);
        for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<std::uint8_t>(i * 37 + 11);
        for (int vec = 0; vec < 2; ++vec) {
          std::vector<float> sc(static_cast<std::size_t>(n) + 1), zp(sc.size());
          for (std::size_t i = 0; i < sc.size(); ++i) {
            sc[i] = 0.01f * static_cast<float>(i % 9 + 1);
            zp[i] = static_cast<float>(i % 3);
          }
          std::vector<float> got(static_cast<std::size_t>(n) + 1, -7.0f), want(got);
          kt->quant.dequantize[static_cast<int>(t)][vec](q.data(), n, sc.data(), zp.data(), 0.3f,
                                                         2.0f, got.data());
          for (std::int64_t i = 0; i < n; ++i) {
            const auto u = static_cast<std::size_t>(i);
            want[u] = lowbit::detail::dequantize_one(lowbit::detail::load_stored(t, q.data(), i),
                                                     vec ? sc[u] : 0.3f,
                                                     static_cast<std::int32_t>(vec ? zp[u] : 2.0f));
          }
          INFO("dtype " << lowbit::to_string(t) << " vec " << vec);
          CHECK(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0);
        }
      }
      // find_nonfinite: none, then one at each position class
      std::vector<float> f(static_cast<std::size_t>(n), 1.0f);
      CHECK(kt->quant.find_nonfinite(f.data(), n) == -1);
      for (std::int64_t at : {std::int64_t{0}, n / 2, n - 1}) {
        if (n == 0) break;
        for (float bad :
             {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
              -std::numeric_limits<float>::infinity()}) {
          std::vector<float> g = f;
          g[static_cast<std::size_t>(at)] = bad;
          if (at + 1 < n) g[static_cast<std::size_t>(at + 1)] = bad;
          CHECK(kt->quant.find_nonfinite(g.data(), n) == at);
        }
      }
      // nibble pack / unpack: the entry's prefix, then the scalar rule, equals scalar
      std::vector<std::uint8_t> vals(static_cast<std::size_t>(n));
      for (std::size_t i = 0; i < vals.size(); ++i) vals[i] = static_cast<std::uint8_t>(i * 5 % 16);
      std::vector<std::uint8_t> packed((n + 1) / 2 + 1, 0xCD), want_packed(packed);
      const std::int64_t done = kt->quant.pack_nibbles(vals.data(), n, packed.data());
      CHECK((done % 2 == 0 || done == n));
      lowbit::arch::portable::pack_nibbles(vals.data() + done, n - done, packed.data() + done / 2);
      lowbit::arch::portable::pack_nibbles(vals.data(), n, want_packed.data());
      CHECK(packed == want_packed);
      for (int sgn = 0; sgn < 2; ++sgn) {
        std::vector<std::uint8_t> un(static_cast<std::size_t>(n) + 1, 0xEE), want_un(un);
        const std::int64_t d2 = kt->quant.unpack_nibbles[sgn](packed.data(), n, un.data());
        if (sgn) {
          lowbit::arch::portable::unpack_nibbles<true>(packed.data() + d2 / 2, n - d2,
                                                       un.data() + d2);
          lowbit::arch::portable::unpack_nibbles<true>(packed.data(), n, want_un.data());
        } else {
          lowbit::arch::portable::unpack_nibbles<false>(packed.data() + d2 / 2, n - d2,
                                                        un.data() + d2);
          lowbit::arch::portable::unpack_nibbles<false>(packed.data(), n, want_un.data());
        }
        CHECK(un == want_un);
      }
      // prepare_row: flip and sum
      for (std::uint8_t flip : {std::uint8_t{0}, std::uint8_t{0x80}}) {
        std::vector<std::uint8_t> src(static_cast<std::size_t>(n)), dst(src.size() + 1, 0x5A);
        for (std::size_t i = 0; i < src.size(); ++i) src[i] = static_cast<std::uint8_t>(255 - i);
        const std::int32_t sum = kt->prepare_row(src.data(), dst.data(), n, flip);
        std::int32_t want_sum = 0;
        for (std::size_t i = 0; i < src.size(); ++i) {
          CHECK(dst[i] == (src[i] ^ flip));
          want_sum += src[i] ^ flip;
        }
        CHECK(dst.back() == 0x5A);
        CHECK(sum == want_sum);
      }
    }
  }
}

namespace {

struct gemm_case {
  std::int64_t m, n, k;
};

/// W [n x k] int8 with extremes (-128 and 127 on every row).
std::vector<std::int8_t> extreme_weights(std::int64_t n, std::int64_t k, bool s4,
                                         std::uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int> d(s4 ? -8 : -128, s4 ? 7 : 127);
  std::vector<std::int8_t> w(static_cast<std::size_t>(n * k));
  for (auto& v : w) v = static_cast<std::int8_t>(d(g));
  for (std::int64_t r = 0; r < n; ++r) {
    w[static_cast<std::size_t>(r * k)] = static_cast<std::int8_t>(s4 ? -8 : -128);
    w[static_cast<std::size_t>(r * k + k - 1)] = static_cast<std::int8_t>(s4 ? 7 : 127);
  }
  return w;
}

}  // namespace

TEST_CASE("every GEMM entry equals lowbit::reference::gemm over ragged shapes and extremes",
          "[kernel_table][gemm]") {
  const gemm_case cases[] = {{1, 1, 1},   {1, 17, 5},   {2, 33, 64},  {3, 16, 31},  {7, 48, 64},
                             {8, 50, 96}, {9, 97, 128}, {15, 3, 257}, {22, 65, 192}};
  for (const kernel_table* kt : runnable_tables()) {
    INFO("table " << name_of(*kt));
    for (const gemm_case& gc : cases)
      for (int fmt = 0; fmt < 3; ++fmt) {  // s8 symmetric, s8 affine, s4 g32
        const bool s4 = fmt == 2;
        if (s4 && gc.k % 32 != 0) continue;
        INFO("M " << gc.m << " N " << gc.n << " K " << gc.k << " format " << fmt);
        const auto wv = extreme_weights(gc.n, gc.k, s4, 11);
        std::vector<float> scales;
        std::vector<std::int32_t> zps;
        lowbit::packed_weights pw;
        lowbit::reference::weights rw;
        rw.values = wv.data();
        rw.n = gc.n;
        rw.k = gc.k;
        rw.ld = gc.k;
        if (!s4) {
          for (std::int64_t j = 0; j < gc.n; ++j) scales.push_back(0.01f + 0.001f * j);
          if (fmt == 1)
            for (std::int64_t j = 0; j < gc.n; ++j) zps.push_back(static_cast<int>(j % 11) - 5);
          pw = lowbit::packed_weights::pack_s8(wv.data(), gc.n, gc.k, gc.k,
                                               lowbit::span<const float>(scales),
                                               lowbit::span<const std::int32_t>(zps), kt->level);
          rw.zero_points = zps;
        } else {
          const std::int64_t groups = gc.k / 32;
          for (std::int64_t j = 0; j < gc.n * groups; ++j) scales.push_back(0.02f + 0.0005f * j);
          std::vector<std::uint8_t> packed(static_cast<std::size_t>((gc.n * gc.k + 1) / 2));
          lowbit::pack_int4(lowbit::span<const std::int8_t>(wv),
                            lowbit::span<std::uint8_t>(packed));
          pw = lowbit::packed_weights::pack_s4(packed.data(), gc.n, gc.k, 32,
                                               lowbit::span<const float>(scales), kt->level);
          rw.format = lowbit::weight_format::s4;
          rw.group_size = 32;
        }
        rw.scales = scales;
        // route this table's kernels (the ymm test table shares avx512_vnni's level)
        std::vector<std::uint8_t> xu(static_cast<std::size_t>(gc.m * gc.k));
        for (std::size_t i = 0; i < xu.size(); ++i)
          xu[i] = static_cast<std::uint8_t>(i % 3 == 0 ? 255 : (i * 73 + 5) % 256);
        std::vector<float> sx(static_cast<std::size_t>(gc.m));
        for (std::size_t i = 0; i < sx.size(); ++i) sx[i] = 0.05f + 0.01f * static_cast<float>(i);
        std::vector<float> bias(static_cast<std::size_t>(gc.n));
        for (std::size_t i = 0; i < bias.size(); ++i) bias[i] = 0.25f * static_cast<float>(i % 5);
        for (int s8act = 0; s8act < 2; ++s8act) {
          const lowbit::activations x =
              s8act ? lowbit::activations::s8(reinterpret_cast<const std::int8_t*>(xu.data()), gc.m,
                                              gc.k, gc.k, lowbit::span<const float>(sx))
                    : lowbit::activations::u8(xu.data(), gc.m, gc.k, gc.k, 131,
                                              lowbit::span<const float>(sx));
          auto run = [&](const lowbit::epilogue& e, lowbit::output y) {
            lowbit::detail::gemm_call call;
            lowbit::detail::validate_gemm(call, x, pw, e, y, {});
            call.kt = kt;
            lowbit::detail::run_gemm(call);
          };
          // int32
          std::vector<std::int32_t> yi(static_cast<std::size_t>(gc.m * gc.n), -1), ri(yi);
          run(lowbit::epilogue::int32(), lowbit::output(yi.data(), gc.n));
          lowbit::reference::gemm(x, rw, lowbit::epilogue::int32(),
                                  lowbit::output(ri.data(), gc.n));
          CHECK(yi == ri);
          // f32 with bias and clamp
          const auto ef =
              lowbit::epilogue::f32(lowbit::span<const float>(bias)).clamp(-50.0f, 60.0f);
          std::vector<float> yf(static_cast<std::size_t>(gc.m * gc.n), -1), rf(yf);
          run(ef, lowbit::output(yf.data(), gc.n));
          lowbit::reference::gemm(x, rw, ef, lowbit::output(rf.data(), gc.n));
          CHECK(std::memcmp(yf.data(), rf.data(), yf.size() * 4) == 0);
          // requantize (s8 weights, per-tensor activation scale)
          if (!s4) {
            const lowbit::activations x1 =
                s8act
                    ? lowbit::activations::s8(reinterpret_cast<const std::int8_t*>(xu.data()), gc.m,
                                              gc.k, gc.k, lowbit::span<const float>(sx.data(), 1))
                    : lowbit::activations::u8(xu.data(), gc.m, gc.k, gc.k, 131,
                                              lowbit::span<const float>(sx.data(), 1));
            auto eq = lowbit::epilogue::requantize(lowbit::dtype::uint8, 0.7f, 100,
                                                   lowbit::span<const float>(bias));
            std::vector<std::uint8_t> yq(static_cast<std::size_t>(gc.m * gc.n)), rq(yq);
            lowbit::detail::gemm_call call;
            lowbit::detail::validate_gemm(call, x1, pw, eq, lowbit::output(yq.data(), gc.n), {});
            call.kt = kt;
            lowbit::detail::run_gemm(call);
            lowbit::reference::gemm(x1, rw, eq, lowbit::output(rq.data(), gc.n));
            CHECK(yq == rq);
          }
        }
      }
  }
}

TEST_CASE("every weight-only entry stays within float rounding of the exact product",
          "[kernel_table][weight_only]") {
  for (const kernel_table* kt : runnable_tables()) {
    if (kt != &lowbit::detail::table_for(kt->level)) continue;  // same weight-only entries
    INFO("table " << name_of(*kt));
    for (const gemm_case& gc : {gemm_case{1, 17, 64}, gemm_case{5, 40, 96}, gemm_case{9, 33, 128}})
      for (int s4 = 0; s4 < 2; ++s4) {
        INFO("M " << gc.m << " N " << gc.n << " K " << gc.k << " s4 " << s4);
        const auto wv = extreme_weights(gc.n, gc.k, s4 != 0, 5);
        std::vector<float> scales;
        lowbit::packed_weights pw;
        const std::int64_t groups = s4 ? gc.k / 32 : 1;
        for (std::int64_t j = 0; j < gc.n * groups; ++j) scales.push_back(0.01f + 0.001f * j);
        if (!s4) {
          pw = lowbit::packed_weights::pack_s8(wv.data(), gc.n, gc.k, gc.k,
                                               lowbit::span<const float>(scales), {}, kt->level);
        } else {
          std::vector<std::uint8_t> packed(static_cast<std::size_t>((gc.n * gc.k + 1) / 2));
          lowbit::pack_int4(lowbit::span<const std::int8_t>(wv),
                            lowbit::span<std::uint8_t>(packed));
          pw = lowbit::packed_weights::pack_s4(packed.data(), gc.n, gc.k, 32,
                                               lowbit::span<const float>(scales), kt->level);
        }
        REQUIRE(&pw.table() == kt);
        const matrixf x = lowbit_test::randn(gc.m, gc.k, 1.0f, 3);
        std::vector<float> y(static_cast<std::size_t>(gc.m * gc.n));
        lowbit::detail::weight_only_gemm(x.data(), gc.m, gc.k, pw, {}, y.data(), gc.n, 1);
        for (std::int64_t r = 0; r < gc.m; ++r)
          for (std::int64_t c = 0; c < gc.n; ++c) {
            double exact = 0, mag = 0;
            for (std::int64_t kk = 0; kk < gc.k; ++kk) {
              const double sw = scales[static_cast<std::size_t>(s4 ? c * groups + kk / 32 : c)];
              const double t = double(x(r, kk)) * wv[static_cast<std::size_t>(c * gc.k + kk)] * sw;
              exact += t;
              mag += std::abs(t);
            }
            // float accumulation over K terms: |error| <= K * eps * sum |terms| (loose bound)
            CHECK(std::abs(y[static_cast<std::size_t>(r * gc.n + c)] - exact) <=
                  static_cast<double>(gc.k) * 1.2e-7 * mag + 1e-6);
          }
      }
  }
}

TEST_CASE("a layer keeps the table it was built with, activation quantization included",
          "[kernel_table][linear][isa]") {
  const matrixf w = lowbit_test::randn(40, 64, 0.2f, 1);
  const matrixf x = lowbit_test::randn(5, 64, 1.0f, 2);
  for (lowbit::isa i : lowbit::all_isas) {
    if (!lowbit::is_available(i)) {
      WARN("isa " << lowbit::to_string(i) << " not available on this CPU/OS: not tested here");
      continue;
    }
    INFO("built under cap " << lowbit::to_string(i));
    lowbit::set_max_isa(i);
    const auto l = lowbit::quantized_linear::dynamic(lowbit::view(w));
    const auto l4 = lowbit::quantized_linear::w4a8(
        lowbit::view(w), {}, lowbit::weight_spec::int4(lowbit::per_group{32}));
    const matrixf y_capped = l(x);
    lowbit::reset_max_isa();
    CHECK(l.isa() == i);
    CHECK(&l.weights().table() == &lowbit::detail::table_for(i));
    CHECK(&l4.weights().table() == &lowbit::detail::table_for(i));
    // after the cap is lifted the layer still runs its own table, bit for bit
    const matrixf y_after = l(x);
    CHECK(std::memcmp(y_capped.data(), y_after.data(), y_after.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("the one-pass dynamic forward equals quantize then reference GEMM, bit for bit",
          "[kernel_table][linear]") {
  const matrixf w = lowbit_test::randn(37, 70, 0.2f, 8);
  matrixf x = lowbit_test::randn(6, 70, 2.0f, 9);
  x(0, 0) = 0.0f;
  x(1, 3) = 12.5f;
  x(2, 69) = -40.0f;
  const auto l = lowbit::quantized_linear::dynamic(lowbit::view(w));
  const matrixf y = l(x);
  // what the layer must compute: per-row narrow int8 params, quantize, exact GEMM
  const auto p = lowbit::choose_qparams_per_row(
      lowbit::view(x), lowbit::qparams_options::symmetric(lowbit::dtype::int8,
                                                          lowbit::symmetric_convention::narrow));
  std::vector<std::uint8_t> q(static_cast<std::size_t>(x.size()));
  lowbit::reference::quantize(lowbit::view(x), p, q.data(), false);
  const auto wq = l.weights().unpack();
  lowbit::reference::weights rw;
  rw.values = reinterpret_cast<const std::int8_t*>(wq.data.data());
  rw.n = 37;
  rw.k = 70;
  rw.ld = 70;
  rw.scales = wq.params.scales;
  matrixf yr(6, 37);
  lowbit::reference::gemm(lowbit::activations::s8(reinterpret_cast<const std::int8_t*>(q.data()), 6,
                                                  70, 70, lowbit::span<const float>(p.scales)),
                          rw, lowbit::epilogue::f32(), lowbit::output(yr.data(), 37));
  CHECK(std::memcmp(y.data(), yr.data(), y.size() * sizeof(float)) == 0);
}

TEST_CASE("after the first call, a layer's forward makes no heap allocation",
          "[kernel_table][linear][alloc]") {
  const std::int64_t M = 12, K = 100, N = 33;  // K = 100: a zero-padded int4 group
  const matrixf w = lowbit_test::randn(N, K, 0.2f, 4);
  const matrixf xm = lowbit_test::randn(M, K, 1.0f, 5);
  const lowbit::vectorf b = lowbit_test::randn(1, N, 0.1f, 6).row(0).transpose();
  const auto bias = lowbit::view(b);
  const lowbit::quant_params in_u8 =
      lowbit::choose_qparams(-4.0f, 4.0f, lowbit::qparams_options::affine());
  const lowbit::quant_params in_s8 =
      lowbit::choose_qparams(-4.0f, 4.0f, lowbit::qparams_options::symmetric());
  const lowbit::quant_params out_u8 =
      lowbit::choose_qparams(-3.0f, 5.0f, lowbit::qparams_options::affine());
  lowbit::dynamic_options per_tensor;
  per_tensor.activations = lowbit::dynamic_options::granularity::per_tensor;
  lowbit::dynamic_options torch;
  torch.pytorch_compatible = true;
  struct named {
    const char* name;
    lowbit::quantized_linear layer;
  };
  const std::vector<named> layers = {
      {"dynamic per row", lowbit::quantized_linear::dynamic(lowbit::view(w), bias)},
      {"dynamic per tensor", lowbit::quantized_linear::dynamic(lowbit::view(w), bias, per_tensor)},
      {"dynamic pytorch", lowbit::quantized_linear::dynamic(lowbit::view(w), bias, torch,
                                                            lowbit::weight_spec::int8().affine())},
      {"static u8 f32 out", lowbit::quantized_linear::static_quant(lowbit::view(w), bias, in_u8)},
      {"static s8 -> u8 -> f32",
       lowbit::quantized_linear::static_quant(lowbit::view(w), bias, in_s8, out_u8, true)},
      {"weight-only int8",
       lowbit::quantized_linear::weight_only(lowbit::view(w), bias, lowbit::weight_spec::int8())},
      {"weight-only int4 padded",
       lowbit::quantized_linear::weight_only(lowbit::view(w), bias,
                                             lowbit::weight_spec::int4(lowbit::per_group{32}))},
      {"w4a8 padded", lowbit::quantized_linear::w4a8(
                          lowbit::view(w), bias, lowbit::weight_spec::int4(lowbit::per_group{32}))},
  };
  std::vector<float> y(static_cast<std::size_t>(M * N));
  for (const named& l : layers) {
    INFO(l.name);
    l.layer.forward(xm.data(), M, K, y.data(), N);  // first call: scratch grows
    const long before = g_allocations.load();
    l.layer.forward(xm.data(), M, K, y.data(), N);
    l.layer.forward(xm.data(), M / 2, K, y.data(), N);  // smaller calls reuse it
    CHECK(g_allocations.load() - before == 0);
  }
  // with two threads too (M2 x N x K is enough work for two, detail::useful_threads),
  // once the pool has started its worker
  const std::int64_t M2 = 160;
  const matrixf xm2 = lowbit_test::randn(M2, K, 1.0f, 7);
  std::vector<float> y2(static_cast<std::size_t>(M2 * N));
  lowbit::gemm_context two;
  two.threads = 2;
  REQUIRE(lowbit::detail::useful_threads(2, M2, N, K) == 2);
  for (const named& l : layers) {
    INFO(l.name << ", 2 threads");
    l.layer.forward(xm2.data(), M2, K, y2.data(), N, two);
    const long before = g_allocations.load();
    l.layer.forward(xm2.data(), M2, K, y2.data(), N, two);
    CHECK(g_allocations.load() - before == 0);
  }
  // and the quantized-in, quantized-out path between static layers
  const auto& st = layers[4].layer;
  std::vector<std::uint8_t> xq(static_cast<std::size_t>(M * K), 3),
      yq(static_cast<std::size_t>(M * N));
  st.forward_quantized(xq.data(), M, K, yq.data(), N);
  const long before = g_allocations.load();
  st.forward_quantized(xq.data(), M, K, yq.data(), N);
  CHECK(g_allocations.load() - before == 0);
}
