// SPDX-License-Identifier: Apache-2.0
// arch/tables.hpp: the list of kernel tables, and the one switch on `isa` in lowbit.
//
// table_for(i) is the only place that maps an isa to code. Objects resolve it once,
// when they are built (packed_weights, quantized_linear, sequential keep the
// pointer); free functions once per call (best_table()). To add an ISA: write
// arch/<new>/kernels.hpp, add the enumerator and its detection (isa.hpp,
// detail/platform/cpu_features.hpp), and add one case here (docs/ARCHITECTURE.md).
#ifndef LOWBIT_ARCH_TABLES_HPP_
#define LOWBIT_ARCH_TABLES_HPP_

#include "lowbit/arch/amx_int8/kernels.hpp"
#include "lowbit/arch/avx2/kernels.hpp"
#include "lowbit/arch/avx512_vnni/kernels.hpp"
#include "lowbit/arch/avx_vnni/kernels.hpp"
#include "lowbit/arch/portable/kernels.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/isa.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// The kernel table of `i`. Does not check availability: callers that take an isa
/// from a user check is_available() first (running a table the CPU lacks is SIGILL).
inline const kernel_table& table_for(lowbit::isa i) noexcept {
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
      return arch::portable::table;
  }
}

/// The table of best_isa() now: what a free function resolves once per call.
inline const kernel_table& best_table() noexcept { return table_for(best_isa()); }

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ARCH_TABLES_HPP_
