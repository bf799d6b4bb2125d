// SPDX-License-Identifier: Apache-2.0
// arch/avx512_vnni/gemm_kernel_ymm.hpp: the avx_vnni ymm kernel compiled with EVEX
// vpdpbusd (AVX512-VNNI + VL), namespace lowbit::arch::avx512_vnni::ymm. It exists so
// tests can verify the avx_vnni kernel body on CPUs that have AVX-512 VNNI but not
// AVX-VNNI; see arch/avx_vnni/gemm_kernel-inl.hpp.
#ifndef LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_YMM_HPP_
#define LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_YMM_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>
#include <cstring>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX512_VNNI)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx512_vnni {
namespace ymm {

#define LOWBIT_YMM_DPBUSD(acc, a, w) _mm256_dpbusd_epi32(acc, a, w)
#include "lowbit/arch/avx_vnni/gemm_kernel-inl.hpp"
#undef LOWBIT_YMM_DPBUSD

}  // namespace ymm
}  // namespace avx512_vnni
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX512_VNNI_GEMM_KERNEL_YMM_HPP_
