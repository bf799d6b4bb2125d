// SPDX-License-Identifier: Apache-2.0
// isa.hpp: the instruction sets lowbit dispatches to, and how the choice is made and capped.
//
// What an isa is
// --------------
// An `isa` names one family of integer kernels, not one CPUID bit:
//
//   portable     xsimd/scalar code at the compiler's baseline (SSE2 on plain x86-64,
//                NEON on AArch64, or whatever -march the user chose). Always there.
//   avx2         ymm, u8 x s8 products widened through 16-bit madd (vpmaddwd).
//   avx_vnni     ymm, VEX-encoded vpdpbusd (Alder Lake and later client cores).
//   avx512_vnni  zmm, EVEX vpdpbusd (Cascade Lake, Ice Lake, Sapphire Rapids, Zen 4).
//   amx_int8     8 KiB tile registers and tdpbssd/tdpbusd (Sapphire Rapids and later).
//
// The same five spellings are the folder and namespace names under arch/, the
// benchmark label component and the values accepted by LOWBIT_MAX_ISA, so grep finds
// one word everywhere. An isa is *available* when all of the following hold:
//   1. the build compiled its kernels (LOWBIT_HAVE_X86_DISPATCH, see macros.hpp);
//   2. the CPU reports every feature its target string (LOWBIT_TARGET_* in macros.hpp)
//      lets the compiler use, e.g. avx2 also needs FMA, BMI1/2, F16C and POPCNT, and
//      amx_int8 also needs everything avx512_vnni needs;
//   3. the OS saves the registers (XCR0) and, for AMX on Linux, granted the process
//      permission to use tile data (detail/platform/amx_permission.hpp; refused = unavailable).
// This is ruy's "built paths x runtime-supported paths", and detail/platform/cpu_features.hpp
// documents every bit. Because target strings nest, two implications are guaranteed
// and code may rely on them: any available isa above portable implies avx2 is
// available, and amx_int8 implies avx512_vnni. Nothing else is implied.
//
// Why an ordered enum
// -------------------
// The enumerators are ordered by expected int8 GEMM throughput, so "higher is better"
// and a cap is a single value: `set_max_isa(isa::avx2)` means "nothing above avx2".
// The order is NOT a hardware hierarchy. AMD Zen 4 has AVX512-VNNI but no AVX-VNNI;
// Alder Lake has AVX-VNNI but no AVX-512. So available_isas() tests each isa on its
// own and may have holes, and best_isa() is "the highest *available* isa not above
// the cap": on Zen 4, a cap of avx_vnni selects avx2, and a cap of amx_int8 (the
// default, i.e. no cap) selects avx512_vnni.
//
// Why dispatch is decided once
// ----------------------------
// CPU detection runs once per process (detail::detected_cpu_features(), including the
// one AMX permission request). The choice of kernels is then made once per *object*,
// not per call and never inside a loop: a quantized_linear asks best_isa() when it is
// constructed, selects that isa's kernel table and packs its weights in that table's
// layout (ruy's "detemplatization watershed", Highway's "hoist dispatch"). Changing the
// cap later affects objects built afterwards, not existing ones; free functions consult
// best_isa() once per call. Below the table everything is inlined for one isa.
//
// Why the ISA appears in every symbol (ODR)
// -----------------------------------------
// A program holds the kernels of every isa at once, compiled from the same headers. If
// two differently-compiled versions of one inline function shared a mangled name, the
// linker would keep one arbitrarily and an AVX2 caller could end up in AVX-512 code.
// Hence two rules. Kernels of isa X live in namespace lowbit::arch::X inside a
// LOWBIT_BEGIN_TARGET region, so each isa's code is a distinct symbol (ruy templatizes
// on Path, Highway uses N_AVX2, N_AVX3). And all of lowbit sits in an inline ABI
// namespace tagged with the translation unit's *baseline* ISA (v0_base, v0_avx2,
// v0_avx512; macros.hpp), so TUs built with different -m flags share no lowbit code.
//
// The tag has one consequence for this header: functions and their function-local
// statics are duplicated per tag. Detection is harmlessly repeated once per tag. The
// cap, however, must be one per process, or set_max_isa() called from a TU built with
// -mavx2 would not cap kernels running from a TU built without it. The cap therefore
// lives in two constant-initialized atomics in namespace lowbit::v0_shared, outside
// the tag. Variables carry no machine code, so sharing them is ODR-safe; their
// encoding (an isa value or a sentinel) must stay stable for all of lowbit 0.x.
//
// How to cap
// ----------
//   LOWBIT_MAX_ISA=<name>   environment, read once, at the first call of max_isa(),
//                           best_isa() or reset_max_isa(). An empty value means unset;
//                           an unknown name prints one warning line on stderr and is
//                           ignored. See config.hpp.
//   set_max_isa(x)          process-wide, atomic; overrides the environment. Capping
//                           to an unavailable isa is fine: best_isa() picks the best
//                           available one below it.
//   reset_max_isa()         back to LOWBIT_MAX_ISA, or to "no cap" when it is unset.
// A cap only ever lowers the choice: it never enables an unavailable isa, and
// available_isas() / is_available() ignore it. Caps exist for tests (run every
// available path against lowbit::reference) and for A/B benchmarks.
//
// All functions here are thread-safe and never throw, except set_max_isa() given a
// value that is not an enumerator.
#ifndef LOWBIT_ISA_HPP_
#define LOWBIT_ISA_HPP_

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/platform/cpu_features.hpp"
#include "lowbit/error.hpp"

// Process-wide cap state, deliberately outside the ABI namespace (see "Why the ISA
// appears in every symbol" above). Internal: use max_isa() and set_max_isa().
namespace lowbit {
namespace v0_shared {
/// max_isa_cap before its first initialization from the environment.
constexpr std::uint8_t cap_unset = 0xff;
/// max_isa_env before the environment has been read.
constexpr std::uint8_t env_not_read = 0xff;
/// max_isa_env when LOWBIT_MAX_ISA is unset, empty or invalid.
constexpr std::uint8_t env_none = 0xfe;

/// The current cap: an isa value, or cap_unset.
inline std::atomic<std::uint8_t> max_isa_cap{cap_unset};
/// The parsed LOWBIT_MAX_ISA: an isa value, env_none or env_not_read.
inline std::atomic<std::uint8_t> max_isa_env{env_not_read};
}  // namespace v0_shared
}  // namespace lowbit

LOWBIT_BEGIN_NAMESPACE

/// Kernel families, ordered so that a higher value is expected to be faster (see above).
enum class isa : std::uint8_t { portable, avx2, avx_vnni, avx512_vnni, amx_int8 };

/// Every isa, in ascending order.
inline constexpr std::array<isa, 5> all_isas = {isa::portable, isa::avx2, isa::avx_vnni,
                                                isa::avx512_vnni, isa::amx_int8};

static_assert(static_cast<unsigned>(isa::portable) == 0, "portable is the floor");
static_assert(isa::portable < isa::avx2 && isa::avx2 < isa::avx_vnni &&
                  isa::avx_vnni < isa::avx512_vnni && isa::avx512_vnni < isa::amx_int8,
              "the order of isa is the preference order");
static_assert(static_cast<unsigned>(all_isas.back()) + 1 == all_isas.size(),
              "all_isas lists every enumerator");
static_assert(static_cast<unsigned>(all_isas.back()) < v0_shared::env_none,
              "isa values must not collide with the cap sentinels");

/// The name of `i`: "portable", "avx2", "avx_vnni", "avx512_vnni" or "amx_int8".
constexpr const char* to_string(isa i) noexcept {
  switch (i) {
    case isa::portable:
      return "portable";
    case isa::avx2:
      return "avx2";
    case isa::avx_vnni:
      return "avx_vnni";
    case isa::avx512_vnni:
      return "avx512_vnni";
    case isa::amx_int8:
      return "amx_int8";
  }
  return "invalid";
}

/// The isa named exactly `name` (as to_string spells it), or nullopt.
constexpr std::optional<isa> isa_from_string(std::string_view name) noexcept {
  for (isa i : all_isas) {
    if (name == to_string(i)) return i;
  }
  return std::nullopt;
}

namespace detail {

constexpr std::uint32_t isa_bit(isa i) noexcept {
  return std::uint32_t{1} << static_cast<unsigned>(i);
}

/// Bit i set <=> isa i is available, given `f` (the definition of "available").
inline std::uint32_t available_isa_mask(const cpu_features& f) noexcept {
  std::uint32_t mask = isa_bit(isa::portable);
#if LOWBIT_HAVE_X86_DISPATCH
  const bool avx2 = f.avx2 && f.fma && f.bmi_f16c_popcnt;
  const bool avx512_vnni = avx2 && f.avx512_core && f.avx512_vnni;
  if (avx2) mask |= isa_bit(isa::avx2);
  if (avx2 && f.avx_vnni) mask |= isa_bit(isa::avx_vnni);
  if (avx512_vnni) mask |= isa_bit(isa::avx512_vnni);
  if (avx512_vnni && f.amx_tile && f.amx_int8 && f.amx_permitted) mask |= isa_bit(isa::amx_int8);
#else
  (void)f;
#endif
  return mask;
}

/// available_isa_mask() of this machine, computed once.
inline std::uint32_t available_isa_mask() noexcept {
  static const std::uint32_t mask = available_isa_mask(detected_cpu_features());
  return mask;
}

/// The stderr line for an invalid LOWBIT_MAX_ISA value (without the newline).
inline std::string max_isa_env_warning(std::string_view value) {
  std::string msg = "lowbit: ignoring LOWBIT_MAX_ISA=\"";
  msg.append(value.data(), value.size());
  msg += "\" (valid names:";
  for (isa i : all_isas) {
    msg += i == all_isas.front() ? " " : ", ";
    msg += to_string(i);
  }
  msg += ')';
  return msg;
}

/// LOWBIT_MAX_ISA, parsed on the first call of the process; nullopt when unset, empty
/// or invalid. The call that parses an invalid value prints the warning, once.
inline std::optional<isa> max_isa_from_environment() noexcept {
  std::uint8_t v = v0_shared::max_isa_env.load(std::memory_order_acquire);
  if (v == v0_shared::env_not_read) {
#if defined(_MSC_VER)
#pragma warning(push)
#pragma warning(disable : 4996)  // getenv: lowbit only reads, once
#endif
    const char* value = std::getenv("LOWBIT_MAX_ISA");
#if defined(_MSC_VER)
#pragma warning(pop)
#endif
    std::optional<isa> parsed;
    if (value != nullptr) parsed = isa_from_string(value);
    const std::uint8_t encoded = parsed ? static_cast<std::uint8_t>(*parsed) : v0_shared::env_none;
    std::uint8_t expected = v0_shared::env_not_read;
    if (v0_shared::max_isa_env.compare_exchange_strong(expected, encoded,
                                                       std::memory_order_acq_rel)) {
      v = encoded;
      if (value != nullptr && *value != '\0' && !parsed) {
        try {
          std::fprintf(stderr, "%s\n", max_isa_env_warning(value).c_str());
        } catch (...) {  // out of memory while building the message: skip the warning
        }
      }
    } else {
      v = expected;  // another thread (or ABI namespace) parsed it first
    }
  }
  if (v == v0_shared::env_none) return std::nullopt;
  return static_cast<isa>(v);
}

/// The one line lowbit prints when only its portable kernels can run on an x86-64
/// machine (see portable_only_warning_due()).
inline constexpr const char* portable_only_warning =
    "lowbit: warning: no AVX2 on this x86-64 CPU (or no x86 dispatch in this build): int8 "
    "GEMM and quantize run the portable kernels, several times slower than float BLAS "
    "(LOWBIT_QUIET=1 hides this line)";

/// Whether to print portable_only_warning: an x86-64 build whose available isas are
/// portable alone (a LOWBIT_MAX_ISA cap does not count: it is a choice), unless
/// LOWBIT_QUIET (`quiet`) is set to anything but "" or "0".
inline bool portable_only_warning_due(std::uint32_t available_mask, const char* quiet) noexcept {
#if defined(__x86_64__) || defined(_M_X64)
  if (available_mask != isa_bit(isa::portable)) return false;
  return quiet == nullptr || *quiet == '\0' || std::strcmp(quiet, "0") == 0;
#else
  (void)available_mask;
  (void)quiet;
  return false;
#endif
}

/// Prints portable_only_warning on stderr once per process when it is due. Called where
/// a kernel table is chosen (arch/tables.hpp), so it shows before the first slow call.
inline void warn_if_portable_only() noexcept {
  static const bool once = [] {
#if defined(_MSC_VER)
#pragma warning(push)
#pragma warning(disable : 4996)  // getenv: lowbit only reads, once
#endif
    if (portable_only_warning_due(available_isa_mask(), std::getenv("LOWBIT_QUIET")))
      std::fprintf(stderr, "%s\n", portable_only_warning);
#if defined(_MSC_VER)
#pragma warning(pop)
#endif
    return true;
  }();
  (void)once;
}

/// The cap when no set_max_isa() is in effect.
inline isa default_max_isa() noexcept {
  return max_isa_from_environment().value_or(all_isas.back());
}

}  // namespace detail

/// The isas this CPU, OS and build support, ascending; always starts with portable.
/// Not affected by the cap.
inline std::vector<isa> available_isas() {
  std::vector<isa> out;
  const std::uint32_t mask = detail::available_isa_mask();
  for (isa i : all_isas) {
    if ((mask & detail::isa_bit(i)) != 0) out.push_back(i);
  }
  return out;
}

/// Whether `i` is in available_isas(). False for values that are not enumerators.
inline bool is_available(isa i) noexcept {
  return static_cast<unsigned>(i) <= static_cast<unsigned>(all_isas.back()) &&
         (detail::available_isa_mask() & detail::isa_bit(i)) != 0;
}

/// The current cap: set_max_isa()'s value, else LOWBIT_MAX_ISA, else amx_int8 (no cap).
inline isa max_isa() noexcept {
  std::uint8_t v = v0_shared::max_isa_cap.load(std::memory_order_acquire);
  if (v == v0_shared::cap_unset) {
    const auto initial = static_cast<std::uint8_t>(detail::default_max_isa());
    std::uint8_t expected = v0_shared::cap_unset;
    // Lose gracefully to a concurrent set_max_isa().
    v = v0_shared::max_isa_cap.compare_exchange_strong(expected, initial, std::memory_order_acq_rel)
            ? initial
            : expected;
  }
  return static_cast<isa>(v);
}

/// Caps dispatch at `cap` for the whole process, overriding LOWBIT_MAX_ISA. `cap` need
/// not be available. Throws lowbit::error if `cap` is not an enumerator of isa.
inline void set_max_isa(isa cap) {
  const auto v = static_cast<unsigned>(cap);
  if (v > static_cast<unsigned>(all_isas.back())) {
    detail::fail("lowbit::set_max_isa: cap = ", v,
                 " is not an isa (valid: 0 portable .. 4 amx_int8)");
  }
  v0_shared::max_isa_cap.store(static_cast<std::uint8_t>(v), std::memory_order_release);
}

/// Undoes set_max_isa(): the cap returns to LOWBIT_MAX_ISA, or to no cap.
inline void reset_max_isa() noexcept {
  v0_shared::max_isa_cap.store(static_cast<std::uint8_t>(detail::default_max_isa()),
                               std::memory_order_release);
}

/// The isa lowbit dispatches to now: the highest available isa that is <= max_isa().
inline isa best_isa() noexcept {
  const std::uint32_t mask = detail::available_isa_mask();
  for (auto v = static_cast<unsigned>(max_isa()); v > 0; --v) {
    if (((mask >> v) & 1u) != 0) return static_cast<isa>(v);
  }
  return isa::portable;
}

/// One line naming the detected CPU features, for examples and benchmark logs, e.g.
/// "avx2 fma avx512 avx512_vnni; no avx_vnni; no amx".
inline std::string describe_cpu() {
#if LOWBIT_HAVE_CPUID
  const detail::cpu_features& f = detail::detected_cpu_features();
  std::string have, lack;
  const auto add = [&](bool present, const char* name) {
    if (present) {
      have += have.empty() ? "" : " ";
      have += name;
    } else {
      lack += "; no ";
      lack += name;
    }
  };
  add(f.avx2, "avx2");
  add(f.fma, "fma");
  if (!f.bmi_f16c_popcnt) add(false, "bmi/bmi2/f16c/popcnt");
  add(f.avx512_core, "avx512");
  add(f.avx512_vnni, "avx512_vnni");
  add(f.avx_vnni, "avx_vnni");
#if defined(LOWBIT_DISABLE_AMX)
  lack += "; amx disabled (LOWBIT_DISABLE_AMX)";
#else
  if (!(f.amx_tile && f.amx_int8)) {
    add(false, "amx");
  } else if (f.amx_permitted) {
    add(true, "amx_int8");
  } else {
    lack += "; amx_int8 present but not permitted by the OS";
  }
#endif
  std::string line = have + lack;
  return have.empty() && !lack.empty() ? line.substr(2) : line;
#else
  return "no x86-64 feature detection on this platform (portable only)";
#endif
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ISA_HPP_
