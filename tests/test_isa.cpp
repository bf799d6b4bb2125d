// SPDX-License-Identifier: Apache-2.0
// Tests for isa.hpp and detail/platform/cpu_features.hpp: names, availability, the cap, and
// detection.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "lowbit/detail/platform/cpu_features.hpp"
#include "lowbit/error.hpp"
#include "lowbit/isa.hpp"

namespace {

using lowbit::isa;

// Restores the default cap however a test exits, so no test leaks its cap.
struct cap_guard {
  cap_guard() { lowbit::reset_max_isa(); }
  ~cap_guard() { lowbit::reset_max_isa(); }
  cap_guard(const cap_guard&) = delete;
  cap_guard& operator=(const cap_guard&) = delete;
};

// The highest available isa <= cap, computed from the public list only.
isa expected_best(isa cap) {
  isa best = isa::portable;
  for (isa i : lowbit::available_isas()) {
    if (i <= cap) best = i;
  }
  return best;
}

// The first "flags" line of /proc/cpuinfo as a set; empty when there is none.
std::set<std::string> cpuinfo_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, 5, "flags") != 0) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(colon + 1));
    std::set<std::string> flags;
    for (std::string w; words >> w;) flags.insert(w);
    return flags;
  }
  return {};
}

}  // namespace

TEST_CASE("isa names round-trip exactly", "[isa]") {
  const std::vector<std::pair<isa, std::string>> names = {{isa::portable, "portable"},
                                                          {isa::avx2, "avx2"},
                                                          {isa::avx_vnni, "avx_vnni"},
                                                          {isa::avx512_vnni, "avx512_vnni"},
                                                          {isa::amx_int8, "amx_int8"}};
  REQUIRE(names.size() == lowbit::all_isas.size());
  for (std::size_t k = 0; k < names.size(); ++k) {
    const isa i = names[k].first;
    CAPTURE(names[k].second);
    CHECK(lowbit::all_isas[k] == i);
    CHECK(std::string(lowbit::to_string(i)) == names[k].second);
    const auto parsed = lowbit::isa_from_string(names[k].second);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == i);
  }
  static_assert(lowbit::isa_from_string("avx512_vnni") == isa::avx512_vnni,
                "isa_from_string is usable in constant expressions");
  CHECK(std::string(lowbit::to_string(static_cast<isa>(42))) == "invalid");
}

TEST_CASE("isa_from_string rejects everything else", "[isa]") {
  const char* const bad[] = {"",         "AVX2",       "Portable",     " avx2",   "avx2 ",
                             "avx512",   "avx512vnni", "avx-vnni",     "avxvnni", "amx",
                             "amx-int8", "amx_bf16",   "avx512_vnni2", "invalid", "sse2",
                             "neon",     "native",     "best",         "0",       "4"};
  for (const char* name : bad) {
    CAPTURE(name);
    CHECK_FALSE(lowbit::isa_from_string(name).has_value());
  }
  CHECK_FALSE(lowbit::isa_from_string(std::string_view("avx2\0", 5)).has_value());
  CHECK_FALSE(lowbit::isa_from_string(std::string_view("avx2", 3)).has_value());
}

TEST_CASE("available_isas is ascending, starts with portable and matches is_available", "[isa]") {
  const std::vector<isa> avail = lowbit::available_isas();
  INFO("cpu: " << lowbit::describe_cpu());
  REQUIRE_FALSE(avail.empty());
  CHECK(avail.front() == isa::portable);
  for (std::size_t k = 1; k < avail.size(); ++k) CHECK(avail[k - 1] < avail[k]);
  for (isa i : lowbit::all_isas) {
    CAPTURE(lowbit::to_string(i));
    const bool listed = std::find(avail.begin(), avail.end(), i) != avail.end();
    CHECK(lowbit::is_available(i) == listed);
  }
  CHECK_FALSE(lowbit::is_available(static_cast<isa>(5)));
  CHECK_FALSE(lowbit::is_available(static_cast<isa>(200)));
#if !LOWBIT_HAVE_X86_DISPATCH
  CHECK(avail.size() == 1);
#endif

  SECTION("the cap does not change availability") {
    cap_guard guard;
    lowbit::set_max_isa(isa::portable);
    CHECK(lowbit::available_isas() == avail);
    CHECK(lowbit::is_available(avail.back()));
  }
}

TEST_CASE("set_max_isa caps best_isa at the best available isa not above the cap", "[isa]") {
  cap_guard guard;
  for (isa cap : lowbit::all_isas) {
    CAPTURE(lowbit::to_string(cap));
    lowbit::set_max_isa(cap);
    CHECK(lowbit::max_isa() == cap);
    const isa best = lowbit::best_isa();
    CHECK(best <= cap);
    CHECK(lowbit::is_available(best));
    CHECK(best == expected_best(cap));
  }
  lowbit::set_max_isa(isa::portable);
  CHECK(lowbit::best_isa() == isa::portable);

  // Capping at an unavailable isa is allowed; it selects something below it.
  lowbit::set_max_isa(isa::amx_int8);
  CHECK(lowbit::best_isa() == lowbit::available_isas().back());
}

TEST_CASE("set_max_isa rejects values that are not enumerators", "[isa]") {
  cap_guard guard;
  lowbit::set_max_isa(isa::avx2);
  try {
    lowbit::set_max_isa(static_cast<isa>(9));
    FAIL("set_max_isa accepted 9");
  } catch (const lowbit::error& e) {
    const std::string what = e.what();
    CHECK(what.find("set_max_isa") != std::string::npos);
    CHECK(what.find('9') != std::string::npos);
  }
  CHECK(lowbit::max_isa() == isa::avx2);  // a rejected call changes nothing
}

TEST_CASE("reset_max_isa restores the environment's cap or no cap", "[isa]") {
  cap_guard guard;
  const isa initial = lowbit::max_isa();
  const isa initial_best = lowbit::best_isa();
  lowbit::set_max_isa(initial == isa::portable ? isa::avx2 : isa::portable);
  CHECK(lowbit::max_isa() != initial);
  lowbit::reset_max_isa();
  CHECK(lowbit::max_isa() == initial);
  CHECK(lowbit::best_isa() == initial_best);

  const char* env = std::getenv("LOWBIT_MAX_ISA");
  const auto env_isa = env != nullptr ? lowbit::isa_from_string(env) : std::nullopt;
  if (env_isa) {
    CHECK(initial == *env_isa);
  } else {
    CHECK(initial == isa::amx_int8);
    CHECK(initial_best == lowbit::available_isas().back());
  }
}

TEST_CASE("the cap is shared by all threads", "[isa]") {
  cap_guard guard;
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &bad] {
      for (int k = 0; k < 2000; ++k) {
        if (t == 0) lowbit::set_max_isa(lowbit::all_isas[static_cast<std::size_t>(k) % 5]);
        const isa best = lowbit::best_isa();
        if (!lowbit::is_available(best)) ++bad[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int b : bad) CHECK(b == 0);
  lowbit::set_max_isa(isa::portable);
  std::thread([] { CHECK(lowbit::best_isa() == isa::portable); }).join();
  lowbit::reset_max_isa();
  std::thread([&] { CHECK(lowbit::best_isa() == expected_best(lowbit::max_isa())); }).join();
}

TEST_CASE("the invalid-LOWBIT_MAX_ISA warning names the value and the valid names", "[isa]") {
  const std::string msg = lowbit::detail::max_isa_env_warning("bogus");
  CHECK(msg.find("LOWBIT_MAX_ISA") != std::string::npos);
  CHECK(msg.find("\"bogus\"") != std::string::npos);
  for (isa i : lowbit::all_isas) CHECK(msg.find(lowbit::to_string(i)) != std::string::npos);
  CHECK(msg.find('\n') == std::string::npos);
}

TEST_CASE("detection runs once and is stable", "[isa]") {
  const lowbit::detail::cpu_features& a = lowbit::detail::detected_cpu_features();
  const lowbit::detail::cpu_features& b = lowbit::detail::detected_cpu_features();
  CHECK(&a == &b);
  const lowbit::detail::cpu_features* from_thread = nullptr;
  std::thread([&] { from_thread = &lowbit::detail::detected_cpu_features(); }).join();
  CHECK(from_thread == &a);

  // A fresh detection agrees with the cached one (AMX permission is idempotent).
  const lowbit::detail::cpu_features again = lowbit::detail::detect_cpu_features();
  CHECK(again.avx2 == a.avx2);
  CHECK(again.fma == a.fma);
  CHECK(again.bmi_f16c_popcnt == a.bmi_f16c_popcnt);
  CHECK(again.avx512_core == a.avx512_core);
  CHECK(again.avx512_vnni == a.avx512_vnni);
  CHECK(again.avx_vnni == a.avx_vnni);
  CHECK(again.amx_tile == a.amx_tile);
  CHECK(again.amx_int8 == a.amx_int8);
  CHECK(again.amx_permitted == a.amx_permitted);
  CHECK(lowbit::available_isas() == lowbit::available_isas());

  const std::string line = lowbit::describe_cpu();
  CHECK_FALSE(line.empty());
  CHECK(line.find('\n') == std::string::npos);
  CHECK(line.compare(0, 2, "; ") != 0);
}

TEST_CASE("detection agrees with /proc/cpuinfo", "[isa]") {
  const std::set<std::string> flags = cpuinfo_flags();
  if (flags.empty()) {
    WARN("no x86 'flags' line in /proc/cpuinfo: cross-check skipped");
    return;
  }
  const auto has = [&](const char* name) { return flags.count(name) != 0; };
  const lowbit::detail::cpu_features& f = lowbit::detail::detected_cpu_features();
  INFO("lowbit: " << lowbit::describe_cpu());

  // Feature flags (Linux clears a flag when XCR0 lacks its state, as lowbit does).
  CHECK(f.avx2 == has("avx2"));
  CHECK(f.fma == has("fma"));
  CHECK(f.bmi_f16c_popcnt == (has("bmi1") && has("bmi2") && has("f16c") && has("popcnt")));
  const bool avx512_core = has("avx512f") && has("avx512bw") && has("avx512dq") && has("avx512vl");
  CHECK(f.avx512_core == avx512_core);
  CHECK(f.avx512_vnni == has("avx512_vnni"));
  CHECK(f.avx_vnni == has("avx_vnni"));
#if !defined(LOWBIT_DISABLE_AMX)
  CHECK(f.amx_tile == has("amx_tile"));
  CHECK(f.amx_int8 == has("amx_int8"));
#endif

  // ISA availability.
  const bool built = LOWBIT_HAVE_X86_DISPATCH != 0;
  const bool avx2 = built && has("avx2") && has("fma") && has("bmi1") && has("bmi2") &&
                    has("f16c") && has("popcnt");
  const bool avx512_vnni = avx2 && avx512_core && has("avx512_vnni");
  CHECK(lowbit::is_available(isa::portable));
  CHECK(lowbit::is_available(isa::avx2) == avx2);
  CHECK(lowbit::is_available(isa::avx_vnni) == (avx2 && has("avx_vnni")));
  CHECK(lowbit::is_available(isa::avx512_vnni) == avx512_vnni);

#if defined(LOWBIT_DISABLE_AMX)
  CHECK_FALSE(lowbit::is_available(isa::amx_int8));
#else
  const bool amx_cpu = avx512_vnni && has("amx_tile") && has("amx_int8");
  if (!amx_cpu) {
    CHECK_FALSE(lowbit::is_available(isa::amx_int8));
    CHECK_FALSE(f.amx_permitted);
  } else {
    // The CPU has AMX; Linux may still refuse the tile-data permission.
    CHECK(lowbit::is_available(isa::amx_int8) == f.amx_permitted);
    if (!f.amx_permitted) WARN("cpuinfo reports amx_int8 but Linux refused XTILEDATA");
  }
#endif
}

TEST_CASE("the portable-only warning: x86-64 without AVX2, once, LOWBIT_QUIET hides it", "[isa]") {
  using lowbit::detail::isa_bit;
  using lowbit::detail::portable_only_warning_due;
  const std::uint32_t portable_only = isa_bit(lowbit::isa::portable);
  const std::uint32_t with_avx2 = portable_only | isa_bit(lowbit::isa::avx2);
#if defined(__x86_64__) || defined(_M_X64)
  CHECK(portable_only_warning_due(portable_only, nullptr));
  CHECK(portable_only_warning_due(portable_only, ""));
  CHECK(portable_only_warning_due(portable_only, "0"));
  CHECK_FALSE(portable_only_warning_due(portable_only, "1"));
  CHECK_FALSE(portable_only_warning_due(portable_only, "yes"));
#else
  CHECK_FALSE(portable_only_warning_due(portable_only, nullptr));  // only x86-64 warns
#endif
  CHECK_FALSE(portable_only_warning_due(with_avx2, nullptr));
  CHECK_FALSE(portable_only_warning_due(with_avx2 | isa_bit(lowbit::isa::avx512_vnni), nullptr));
  CHECK(std::string_view(lowbit::detail::portable_only_warning).find("LOWBIT_QUIET=1") !=
        std::string_view::npos);
}
