// SPDX-License-Identifier: Apache-2.0
// detail/platform/cpu_features.hpp: what this CPU and OS let lowbit run, detected once per process.
//
// A feature counts only when the CPU reports it (CPUID) AND the OS saves the register
// state it uses (XCR0, read with XGETBV after checking OSXSAVE). A CPU bit without
// the OS bit means "the instructions exist but the registers are not preserved across
// context switches", so using them would corrupt state or fault. The bits:
//
//   flag             CPUID bits                          XCR0 bits (OS-enabled state)
//   fma              (1).ECX[12] FMA, [28] AVX           1 SSE, 2 AVX
//   avx2             (7,0).EBX[5]; (1).ECX[28] AVX       1, 2
//   bmi_f16c_popcnt  (7,0).EBX[3] BMI1, [8] BMI2;        1, 2 (for F16C)
//                    (1).ECX[29] F16C, [23] POPCNT
//   avx512_core      (7,0).EBX[16] F, [17] DQ, [30] BW,  1, 2, 5 opmask, 6 ZMM_Hi256,
//                    [31] VL                             7 Hi16_ZMM
//   avx512_vnni      (7,0).ECX[11]                       1, 2, 5, 6, 7
//   avx_vnni         (7,1).EAX[4]; (1).ECX[28] AVX       1, 2
//   amx_tile         (7,0).EDX[24]                       17 XTILECFG, 18 XTILEDATA
//   amx_int8         (7,0).EDX[25]                       17, 18
//
// amx_permitted additionally records that Linux granted XTILEDATA to this process
// (detail/platform/amx_permission.hpp). The request is made here, lazily, during the first
// detection, and only when the CPU and XCR0 report both AMX bits.
//
// Each flag is reported on its own: combining them into instruction sets (AVX-VNNI
// without AVX-512, AVX512-VNNI without AVX-VNNI on AMD Zen 4) is isa.hpp's job.
//
// macOS enables AVX-512 state lazily, on a thread's first AVX-512 instruction, so its
// XCR0 may not show bits 5-7 yet; there the kernel's sysctl hw.optional.avx512f is
// the OS answer (Highway does the same).
//
// "Once per process": detected_cpu_features() keeps the result in a function-local
// static, which C++11 initializes exactly once even under concurrent first calls.
// Each lowbit ABI namespace (macros.hpp) and each DSO built with hidden visibility
// has its own copy; that is harmless because detection is idempotent and the AMX
// grant is process-wide.
#ifndef LOWBIT_DETAIL_PLATFORM_CPU_FEATURES_HPP_
#define LOWBIT_DETAIL_PLATFORM_CPU_FEATURES_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/platform/amx_permission.hpp"
#include "lowbit/detail/platform/cpuid.hpp"

#if LOWBIT_HAVE_CPUID && defined(__APPLE__)
#include <sys/sysctl.h>
#include <sys/types.h>

#include <cstddef>
#endif

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// Usable x86 features (CPU bit and OS support; see the file comment). All false on
/// other architectures.
struct cpu_features {
  bool avx2 = false;
  bool fma = false;
  bool bmi_f16c_popcnt = false;  ///< BMI1 + BMI2 + F16C + POPCNT: the rest of LOWBIT_TARGET_AVX2
  bool avx512_core = false;      ///< AVX512 F + BW + DQ + VL
  bool avx512_vnni = false;
  bool avx_vnni = false;       ///< VEX-encoded (ymm) vpdpbusd
  bool amx_tile = false;       ///< always false under LOWBIT_DISABLE_AMX
  bool amx_int8 = false;       ///< always false under LOWBIT_DISABLE_AMX
  bool amx_permitted = false;  ///< Linux granted XTILEDATA to this process
};

#if LOWBIT_HAVE_CPUID && defined(__APPLE__)
/// macOS: true when the kernel will enable AVX-512 state on first use.
inline bool apple_avx512_on_demand() noexcept {
  int value = 0;
  std::size_t size = sizeof(value);
  return sysctlbyname("hw.optional.avx512f", &value, &size, nullptr, 0) == 0 && value != 0;
}
#endif

/// Runs CPUID/XGETBV (and, on AMX CPUs, the Linux permission request). Prefer
/// detected_cpu_features(), which does this once.
inline cpu_features detect_cpu_features() noexcept {
  cpu_features f;
#if LOWBIT_HAVE_CPUID
  const std::uint32_t max_leaf = cpuid(0).eax;
  if (max_leaf < 1) return f;
  const cpuid_regs leaf1 = cpuid(1);
  if (!has_bit(leaf1.ecx, 27)) return f;  // OSXSAVE clear: XGETBV would fault, no AVX state

  const std::uint64_t xcr0 = xgetbv(0);
  const bool os_avx = has_bit(xcr0, 1) && has_bit(xcr0, 2);
  bool os_avx512 = os_avx && has_bit(xcr0, 5) && has_bit(xcr0, 6) && has_bit(xcr0, 7);
#if defined(__APPLE__)
  if (os_avx && !os_avx512) os_avx512 = apple_avx512_on_demand();
#endif
  const bool avx = os_avx && has_bit(leaf1.ecx, 28);
  f.fma = avx && has_bit(leaf1.ecx, 12);
  if (max_leaf < 7) return f;

  const cpuid_regs leaf7 = cpuid(7, 0);
  f.avx2 = avx && has_bit(leaf7.ebx, 5);
  f.bmi_f16c_popcnt = has_bit(leaf7.ebx, 3) && has_bit(leaf7.ebx, 8) && avx &&
                      has_bit(leaf1.ecx, 29) && has_bit(leaf1.ecx, 23);
  f.avx512_core = os_avx512 && has_bit(leaf7.ebx, 16) && has_bit(leaf7.ebx, 17) &&
                  has_bit(leaf7.ebx, 30) && has_bit(leaf7.ebx, 31);
  f.avx512_vnni = os_avx512 && has_bit(leaf7.ecx, 11);
  if (leaf7.eax >= 1) {  // CPUID(7,0).EAX is the highest subleaf of leaf 7
    f.avx_vnni = avx && has_bit(cpuid(7, 1).eax, 4);
  }
#if !defined(LOWBIT_DISABLE_AMX)
  const bool os_amx = has_bit(xcr0, 17) && has_bit(xcr0, 18);
  f.amx_tile = os_amx && has_bit(leaf7.edx, 24);
  f.amx_int8 = os_amx && has_bit(leaf7.edx, 25);
  if (f.amx_tile && f.amx_int8) f.amx_permitted = request_amx_permission();
#endif
#endif  // LOWBIT_HAVE_CPUID
  return f;
}

/// The features of this machine, detected on the first call and cached (thread-safe).
/// Every call returns the same object.
inline const cpu_features& detected_cpu_features() noexcept {
  static const cpu_features features = detect_cpu_features();
  return features;
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_PLATFORM_CPU_FEATURES_HPP_
