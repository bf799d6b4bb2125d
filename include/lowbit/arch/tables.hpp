// SPDX-License-Identifier: Apache-2.0
// arch/tables.hpp: the list of kernel tables, and the one switch on `isa` in lowbit.
//
// table_for(i) is the only place that maps an isa to code. Objects resolve it once,
// when they are built (packed_weights, quantized_linear, sequential keep the
// pointer); free functions once per call (best_table()). To add an ISA: write
// arch/<new>/kernels.hpp, add the enumerator and its detection (isa.hpp,
// detail/platform/cpu_features.hpp), and add one case here (docs/ARCHITECTURE.md).
//
// Two ways to build (docs/ARCHITECTURE.md, "Compile cost"):
//   header-only (default)     every TU that includes this file compiles every table,
//                             i.e. every ISA's kernels (intrinsics headers included);
//   LOWBIT_SEPARATE_KERNELS   defined for the whole program: this file only declares
//                             table_for(), and ONE source file of the program includes
//                             lowbit/compiled_kernels.hpp, which defines it with every
//                             table. The other TUs then compile no kernel code at all.
#ifndef LOWBIT_ARCH_TABLES_HPP_
#define LOWBIT_ARCH_TABLES_HPP_

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/isa.hpp"

#if defined(LOWBIT_SEPARATE_KERNELS) && !defined(LOWBIT_COMPILING_KERNELS)
LOWBIT_BEGIN_NAMESPACE
namespace detail {
/// The kernel table of `i` (defined in the TU that includes lowbit/compiled_kernels.hpp).
const kernel_table& table_for(lowbit::isa i) noexcept;
}  // namespace detail
LOWBIT_END_NAMESPACE
#define LOWBIT_TABLE_FOR_DEFINED 0
#else
#include "lowbit/arch/amx_int8/kernels.hpp"
#include "lowbit/arch/avx2/kernels.hpp"
#include "lowbit/arch/avx512_vnni/kernels.hpp"
#include "lowbit/arch/avx_vnni/kernels.hpp"
#include "lowbit/arch/portable/kernels.hpp"
#define LOWBIT_TABLE_FOR_DEFINED 1
#endif

#if LOWBIT_TABLE_FOR_DEFINED
#if defined(LOWBIT_COMPILING_KERNELS)
#define LOWBIT_TABLE_FOR_LINKAGE  // one out-of-line definition (compiled_kernels.hpp)
#else
#define LOWBIT_TABLE_FOR_LINKAGE inline
#endif
LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// The kernel table of `i`. Does not check availability: callers that take an isa
/// from a user check is_available() first (running a table the CPU lacks is SIGILL).
LOWBIT_TABLE_FOR_LINKAGE const kernel_table& table_for(lowbit::isa i) noexcept {
  switch (i) {
#if LOWBIT_HAVE_X86_DISPATCH
    case isa::amx_int8:
      return arch::amx_int8::table;
    case isa::avx512_vnni:
      return arch::avx512_vnni::table;
    case isa::avx_vnni:
      return arch::avx_vnni::table;
    case isa::avx2:
      return arch::avx2::table;
#endif
    default:
      warn_if_portable_only();  // once per process, on x86-64 CPUs without AVX2
      return arch::portable::table;
  }
}

}  // namespace detail
LOWBIT_END_NAMESPACE
#undef LOWBIT_TABLE_FOR_LINKAGE
#endif  // LOWBIT_TABLE_FOR_DEFINED
#undef LOWBIT_TABLE_FOR_DEFINED

LOWBIT_BEGIN_NAMESPACE
namespace detail {
/// The table of best_isa() now: what a free function resolves once per call.
inline const kernel_table& best_table() noexcept { return table_for(best_isa()); }
}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ARCH_TABLES_HPP_
