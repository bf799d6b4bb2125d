// SPDX-License-Identifier: Apache-2.0
// arch/portable/gemm_kernel.hpp: the portable u8 x s8 microkernels (plain C++).
//
// Same contract as every ISA's gemm_kernel.hpp (see detail/gemm/driver.hpp):
//   s8<MR>(a, lda, b, kb, ke, c): c[r][j] = sum_{k4 in [kb, ke)} sum_{i<4}
//                                     a[r * lda + 4 k4 + i] * int8(b[k4 * 64 + 4 j + i])
//   s4<MR>(...): the same over k8 rows of the s4 panel (two k4 rows per byte row).
// for r < MR, j < 16 (one panel of 16 output channels). Written so compilers vectorize
// the j loop at the baseline ISA; exact in int32 within max_k().
#ifndef LOWBIT_ARCH_PORTABLE_GEMM_KERNEL_HPP_
#define LOWBIT_ARCH_PORTABLE_GEMM_KERNEL_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace portable {

struct gemm_kernels {
  static constexpr int mr = 4;

  template <int MR>
  static void s8(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b, std::int64_t kb,
                 std::int64_t ke, std::int32_t* c) noexcept {
    std::int32_t acc[MR][16] = {};
    for (std::int64_t k4 = kb; k4 < ke; ++k4) {
      const std::uint8_t* row = b + k4 * 64;
      for (int r = 0; r < MR; ++r) {
        const std::uint8_t* ar = a + r * lda + 4 * k4;
        for (int i = 0; i < 4; ++i) {
          const std::int32_t av = ar[i];
          for (int j = 0; j < 16; ++j) acc[r][j] += av * static_cast<std::int8_t>(row[4 * j + i]);
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 16; ++j) c[r * 16 + j] = acc[r][j];
  }

  template <int MR>
  static void s4(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b, std::int64_t kb,
                 std::int64_t ke, std::int32_t* c) noexcept {
    std::int32_t acc[MR][16] = {};
    for (std::int64_t k8 = kb; k8 < ke; ++k8) {
      const std::uint8_t* row = b + k8 * 64;
      for (int r = 0; r < MR; ++r) {
        const std::uint8_t* ar = a + r * lda + 8 * k8;
        for (int i = 0; i < 4; ++i) {
          const std::int32_t lo_a = ar[i], hi_a = ar[4 + i];
          for (int j = 0; j < 16; ++j) {
            const int v = row[4 * j + i];
            const int lo = (v & 0x0F) - 8, hi = (v >> 4) - 8;  // stored w + 8
            acc[r][j] += lo_a * lo + hi_a * hi;
          }
        }
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 16; ++j) c[r * 16 + j] = acc[r][j];
  }
};

}  // namespace portable
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ARCH_PORTABLE_GEMM_KERNEL_HPP_
