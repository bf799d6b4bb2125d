// SPDX-License-Identifier: Apache-2.0
// arch/avx2/gemm_f32_kernel.hpp: weight-only f32 x packed int8/int4 microkernels (ymm).
// Same decoding as arch/avx512_vnni/gemm_f32_kernel.hpp on the two 32-byte halves of
// a packed row (channels 0-7, 8-15); avx_vnni and avx2 levels both run it.
#ifndef LOWBIT_ARCH_AVX2_GEMM_F32_KERNEL_HPP_
#define LOWBIT_ARCH_AVX2_GEMM_F32_KERNEL_HPP_

#include "lowbit/detail/core/macros.hpp"

#if LOWBIT_HAVE_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>

LOWBIT_BEGIN_TARGET(LOWBIT_TARGET_AVX2)
LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace avx2 {

struct gemm_f32_kernels {
  static constexpr int mr = 4;

  template <int MR, int Bits, int Shl>
  static void step(const float* x, std::int64_t ldx, std::int64_t kk, __m256i v0, __m256i v1,
                   __m256 acc[MR][2]) noexcept {
    const __m256 w0 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v0, Shl), 32 - Bits));
    const __m256 w1 = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v1, Shl), 32 - Bits));
    for (int r = 0; r < MR; ++r) {
      const __m256 xv = _mm256_set1_ps(x[r * ldx + kk]);
      acc[r][0] = _mm256_fmadd_ps(xv, w0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(xv, w1, acc[r][1]);
    }
  }

  template <int MR>
  static void s8(const float* x, std::int64_t ldx, const std::uint8_t* b, std::int64_t k,
                 float* c) noexcept {
    __m256 acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (std::int64_t k4 = 0; 4 * k4 < k; ++k4) {
      const auto* p = reinterpret_cast<const __m256i*>(b + k4 * 64);
      const __m256i v0 = _mm256_load_si256(p), v1 = _mm256_load_si256(p + 1);
      const std::int64_t left = k - 4 * k4;
      step<MR, 8, 24>(x, ldx, 4 * k4, v0, v1, acc);
      if (left > 1) step<MR, 8, 16>(x, ldx, 4 * k4 + 1, v0, v1, acc);
      if (left > 2) step<MR, 8, 8>(x, ldx, 4 * k4 + 2, v0, v1, acc);
      if (left > 3) step<MR, 8, 0>(x, ldx, 4 * k4 + 3, v0, v1, acc);
    }
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_ps(c + r * 16, acc[r][0]);
      _mm256_storeu_ps(c + r * 16 + 8, acc[r][1]);
    }
  }

  template <int MR>
  static void s4(const float* x, std::int64_t ldx, const std::uint8_t* b, std::int64_t k8b,
                 std::int64_t k8e, float* c) noexcept {
    __m256 acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (std::int64_t k8 = k8b; k8 < k8e; ++k8) {
      const auto* p = reinterpret_cast<const __m256i*>(b + k8 * 64);
      // stored nibbles are w + 8: ^ 0x88 gives w's two's complement nibbles back
      const __m256i x88 = _mm256_set1_epi8(static_cast<char>(0x88));
      const __m256i v0 = _mm256_xor_si256(_mm256_load_si256(p), x88),
                    v1 = _mm256_xor_si256(_mm256_load_si256(p + 1), x88);
      const std::int64_t k0 = 8 * k8;
      step<MR, 4, 28>(x, ldx, k0 + 0, v0, v1, acc);
      step<MR, 4, 20>(x, ldx, k0 + 1, v0, v1, acc);
      step<MR, 4, 12>(x, ldx, k0 + 2, v0, v1, acc);
      step<MR, 4, 4>(x, ldx, k0 + 3, v0, v1, acc);
      step<MR, 4, 24>(x, ldx, k0 + 4, v0, v1, acc);
      step<MR, 4, 16>(x, ldx, k0 + 5, v0, v1, acc);
      step<MR, 4, 8>(x, ldx, k0 + 6, v0, v1, acc);
      step<MR, 4, 0>(x, ldx, k0 + 7, v0, v1, acc);
    }
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_ps(c + r * 16, acc[r][0]);
      _mm256_storeu_ps(c + r * 16 + 8, acc[r][1]);
    }
  }
};

}  // namespace avx2
}  // namespace arch
LOWBIT_END_NAMESPACE
LOWBIT_END_TARGET

#endif  // LOWBIT_HAVE_X86_DISPATCH
#endif  // LOWBIT_ARCH_AVX2_GEMM_F32_KERNEL_HPP_
