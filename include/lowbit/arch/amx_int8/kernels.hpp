// SPDX-License-Identifier: Apache-2.0
// arch/amx_int8/kernels.hpp: the kernel table of isa::amx_int8 (detail/kernel_table.hpp).
//
// AMX tile kernels (tdpbusd on 16 x 64-byte tiles) are not written yet: this table
// runs the avx512_vnni entries (amx_int8 implies avx512_vnni, isa.hpp). The AMX work
// replaces `gemm` here and nothing else; the packed layout already matches an AMX B
// tile (16 rows of 64 bytes = 16 consecutive rows of a panel, packed_weights.hpp).
#ifndef LOWBIT_ARCH_AMX_INT8_KERNELS_HPP_
#define LOWBIT_ARCH_AMX_INT8_KERNELS_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include "lowbit/arch/avx512_vnni/kernels.hpp"
#include "lowbit/detail/kernel_table.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace amx_int8 {

constexpr detail::kernel_table make_table() noexcept {
  detail::kernel_table t = avx512_vnni::table;
  t.level = isa::amx_int8;
  return t;
}

/// The amx_int8 table.
inline constexpr detail::kernel_table table = make_table();

}  // namespace amx_int8
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AMX_INT8_KERNELS_HPP_
