// SPDX-License-Identifier: Apache-2.0
// detail/platform/amx_permission.hpp: asks Linux for permission to use AMX tile data, once.
//
// Since Linux 5.16 AMX tile data (XSTATE component 18, XTILEDATA, 8 KiB per thread)
// is a *dynamically enabled* feature: XCR0 advertises it, but the first tile
// instruction of a process that has not asked for it raises SIGILL. A process asks
// with arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); the grant is process-wide
// and covers threads created before and after the call (kernel commit db8268df; verified
// in ../shared/notes/style-anchors.md §4). See the kernel's
// Documentation/arch/x86/xstate.rst.
//
// The request fails on kernels older than 5.16 (EINVAL), under seccomp filters that
// reject the call, and when an already-installed sigaltstack is too small for the
// larger signal frame. lowbit treats every failure the same way: AMX is unavailable
// and dispatch falls back silently to the next ISA. Defining LOWBIT_DISABLE_AMX (see
// config.hpp) removes the system call from the program altogether.
//
// Note: ARCH_REQ_XCOMP_PERM is 0x1023. Some public code defines it as 0x1022, which
// is ARCH_GET_XCOMP_PERM, and so never actually asks.
#ifndef LOWBIT_DETAIL_PLATFORM_AMX_PERMISSION_HPP_
#define LOWBIT_DETAIL_PLATFORM_AMX_PERMISSION_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_OS_LINUX && LOWBIT_ARCH_X86_64 && !defined(LOWBIT_DISABLE_AMX)
#define LOWBIT_HAVE_AMX_PERMISSION_REQUEST 1
#include <sys/syscall.h>  // SYS_arch_prctl
#include <unistd.h>       // syscall

#include <cerrno>
#else
#define LOWBIT_HAVE_AMX_PERMISSION_REQUEST 0
#endif

LOWBIT_BEGIN_NAMESPACE
namespace detail {

#if LOWBIT_HAVE_AMX_PERMISSION_REQUEST

/// Requests AMX tile-data permission for the whole process and verifies the grant.
/// Returns false on any failure; never throws, never prints, and leaves errno as it
/// found it. Idempotent, but callers should go through detected_cpu_features(),
/// which asks only once and only on CPUs that report AMX.
inline bool request_amx_permission() noexcept {
  constexpr long arch_get_xcomp_perm = 0x1022;  // ARCH_GET_XCOMP_PERM
  constexpr long arch_req_xcomp_perm = 0x1023;  // ARCH_REQ_XCOMP_PERM
  constexpr unsigned xfeature_xtiledata = 18;   // XFEATURE_XTILEDATA

  const int saved_errno = errno;
  const long rc =
      syscall(SYS_arch_prctl, arch_req_xcomp_perm, static_cast<long>(xfeature_xtiledata));
  // The kernel writes the permitted-feature bitmap as an unsigned long (64 bits here).
  unsigned long permitted = 0;
  const long rc_get = rc == 0 ? syscall(SYS_arch_prctl, arch_get_xcomp_perm, &permitted) : -1;
  errno = saved_errno;
  return rc == 0 && rc_get == 0 && ((permitted >> xfeature_xtiledata) & 1ul) != 0;
}

#else

/// AMX permission is never requested here (not Linux x86-64, or LOWBIT_DISABLE_AMX):
/// AMX is treated as unavailable and no system call is compiled in.
inline bool request_amx_permission() noexcept { return false; }

#endif

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_PLATFORM_AMX_PERMISSION_HPP_
