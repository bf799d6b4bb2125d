// SPDX-License-Identifier: Apache-2.0
// arch/avx_vnni/gemm_kernel.hpp: AVX-VNNI (VEX ymm vpdpbusd) microkernels, 4 rows x 16.
// The body and its register map are in gemm_kernel-inl.hpp.
#ifndef LOWBIT_ARCH_AVX_VNNI_GEMM_KERNEL_HPP_
#define LOWBIT_ARCH_AVX_VNNI_GEMM_KERNEL_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>
#include <cstring>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX_VNNI)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx_vnni {

#define LOWBIT_YMM_DPBUSD(acc, a, w) _mm256_dpbusd_avx_epi32(acc, a, w)
#include "lowbit/arch/avx_vnni/gemm_kernel-inl.hpp"
#undef LOWBIT_YMM_DPBUSD

}  // namespace avx_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX_VNNI_GEMM_KERNEL_HPP_
