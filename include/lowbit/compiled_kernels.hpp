// SPDX-License-Identifier: Apache-2.0
// compiled_kernels.hpp: include in exactly ONE source file of a program built with
// LOWBIT_SEPARATE_KERNELS, to compile every kernel table there (arch/tables.hpp).
//
//   // lowbit_kernels.cpp, compiled with -DLOWBIT_SEPARATE_KERNELS like every other TU
//   #include <lowbit/compiled_kernels.hpp>
//
// The other TUs then include lowbit's headers without any kernel code: no intrinsics
// headers, no per-ISA template instances (docs/ARCHITECTURE.md, "Compile cost").
// Without LOWBIT_SEPARATE_KERNELS this header is an error: the tables are inline in
// every TU already, and a second definition would not link.
#ifndef LOWBIT_COMPILED_KERNELS_HPP_
#define LOWBIT_COMPILED_KERNELS_HPP_

#if !defined(LOWBIT_SEPARATE_KERNELS)
#error "lowbit/compiled_kernels.hpp is for programs built with LOWBIT_SEPARATE_KERNELS"
#endif
#if defined(LOWBIT_ARCH_TABLES_HPP_)
#error "include lowbit/compiled_kernels.hpp before any other lowbit header of this file"
#endif

#define LOWBIT_COMPILING_KERNELS 1
#include "lowbit/arch/tables.hpp"
#undef LOWBIT_COMPILING_KERNELS

#endif  // LOWBIT_COMPILED_KERNELS_HPP_
