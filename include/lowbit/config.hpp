// SPDX-License-Identifier: Apache-2.0
// config.hpp: every user-facing configuration knob of lowbit, documented in one place.
//
// lowbit is header-only and configures itself; nothing here needs to be set.
// Define a macro before the first lowbit include (or with -D) to change behaviour.
//
// Compile-time macros
// -------------------
//   LOWBIT_DISABLE_AMX      Never use AMX: no CPUID probe for tiles and no
//                           arch_prctl(ARCH_REQ_XCOMP_PERM) system call. For
//                           sandboxes (seccomp) that kill processes on unknown
//                           syscalls. Default: undefined (AMX used when the CPU
//                           has it and Linux grants the permission).
//   LOWBIT_DISABLE_DISPATCH Compile no kernel above the compiler's baseline ISA:
//                           every call runs the portable (xsimd/scalar) path.
//                           For compilers without target attributes.
//   LOWBIT_NO_OPENMP        Use std::thread even when OpenMP is enabled.
//
// Environment variables (read once per process)
// ---------------------------------------------
//   LOWBIT_MAX_ISA=<name>   Cap the instruction set lowbit dispatches to:
//                           portable | avx2 | avx_vnni | avx512_vnni | amx_int8.
//                           An unknown name is ignored with a warning on stderr;
//                           an empty value means unset.
//                           The programmatic equivalent is lowbit::set_max_isa().
#ifndef LOWBIT_CONFIG_HPP_
#define LOWBIT_CONFIG_HPP_

#include "lowbit/version.hpp"

#endif  // LOWBIT_CONFIG_HPP_
