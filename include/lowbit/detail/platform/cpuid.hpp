// SPDX-License-Identifier: Apache-2.0
// detail/platform/cpuid.hpp: the two raw x86-64 probes, CPUID and XGETBV, for GCC/Clang and MSVC.
//
// Nothing here interprets a bit; detail/platform/cpu_features.hpp does. Both probes exist
// only when LOWBIT_HAVE_CPUID is 1 (x86-64 with a GNU-compatible compiler or MSVC);
// elsewhere this header defines nothing and callers report "no x86 features".
//
// xgetbv is emitted as its opcode bytes (0F 01 D0) on GCC/Clang, as Highway does, so
// neither the header nor the user's build needs -mxsave. Calling it when CPUID(1).ECX
// bit 27 (OSXSAVE) is clear raises #UD: check OSXSAVE first.
#ifndef LOWBIT_DETAIL_PLATFORM_CPUID_HPP_
#define LOWBIT_DETAIL_PLATFORM_CPUID_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_ARCH_X86_64 && (defined(_MSC_VER) || defined(__GNUC__) || defined(__clang__))
#define LOWBIT_HAVE_CPUID 1
#else
#define LOWBIT_HAVE_CPUID 0
#endif

#if LOWBIT_HAVE_CPUID && defined(_MSC_VER)
#include <immintrin.h>  // _xgetbv
#include <intrin.h>     // __cpuidex
#endif

LOWBIT_BEGIN_NAMESPACE
namespace detail {

#if LOWBIT_HAVE_CPUID

/// The four result registers of one CPUID query.
struct cpuid_regs {
  std::uint32_t eax, ebx, ecx, edx;
};

/// CPUID with EAX = leaf and ECX = subleaf. Leaves above CPUID(0).EAX (the highest
/// supported standard leaf) return unrelated data: callers check the maximum first.
inline cpuid_regs cpuid(std::uint32_t leaf, std::uint32_t subleaf = 0) noexcept {
#if defined(_MSC_VER)
  int r[4];
  __cpuidex(r, static_cast<int>(leaf), static_cast<int>(subleaf));
  return {static_cast<std::uint32_t>(r[0]), static_cast<std::uint32_t>(r[1]),
          static_cast<std::uint32_t>(r[2]), static_cast<std::uint32_t>(r[3])};
#else
  // On x86-64 RBX may be clobbered freely, even in PIC code (only i386 PIC reserves EBX).
  cpuid_regs r;
  __asm__ __volatile__("cpuid"
                       : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                       : "a"(leaf), "c"(subleaf));
  return r;
#endif
}

/// XGETBV: the extended control register `xcr` (0 = XCR0, the OS-enabled state
/// components). Only valid when CPUID(1).ECX bit 27 (OSXSAVE) is set.
inline std::uint64_t xgetbv(std::uint32_t xcr = 0) noexcept {
#if defined(_MSC_VER)
  return static_cast<std::uint64_t>(_xgetbv(xcr));
#else
  std::uint32_t lo = 0, hi = 0;
  __asm__ __volatile__(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(xcr));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
#endif
}

/// Bit `n` of `word`.
constexpr bool has_bit(std::uint64_t word, unsigned n) noexcept { return ((word >> n) & 1u) != 0; }

#endif  // LOWBIT_HAVE_CPUID

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_PLATFORM_CPUID_HPP_
