// SPDX-License-Identifier: Apache-2.0
// arch/avx_vnni/kernels.hpp: the kernel table of isa::avx_vnni (detail/kernel_table.hpp).
//
//   gemm         s8_4x16c4__avxvnni, s4_4x16c8__avxvnni   int32 kernels, VEX ymm vpdpbusd
//                (arch/avx_vnni/gemm_kernel-inl.hpp), detail/gemm/raw_tile.hpp epilogue
//   everything else: the avx2 entries (AVX-VNNI adds nothing to them)
#ifndef LOWBIT_ARCH_AVX_VNNI_KERNELS_HPP_
#define LOWBIT_ARCH_AVX_VNNI_KERNELS_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include "lowbit/arch/avx2/kernels.hpp"
#include "lowbit/arch/avx_vnni/gemm_kernel.hpp"
#include "lowbit/detail/gemm/raw_tile.hpp"
#include "lowbit/detail/kernel_table.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx_vnni {

constexpr detail::kernel_table make_table() noexcept {
  detail::kernel_table t = avx2::table;
  t.level = isa::avx_vnni;
  t.gemm = detail::raw_gemm_ukernels<gemm_kernels>("s8_4x16c4__avxvnni", "s4_4x16c8__avxvnni");
  return t;
}

/// The avx_vnni table.
inline constexpr detail::kernel_table table = make_table();

}  // namespace avx_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX_VNNI_KERNELS_HPP_
