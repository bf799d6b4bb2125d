// SPDX-License-Identifier: Apache-2.0
// arch/portable/gemm_f32_kernel.hpp: weight-only microkernels, f32 activations x packed
// int8 / int4 weights (the packed_weights panel layout), f32 accumulation.
//
// Contract, shared by every ISA (detail/gemm/weight_only.hpp drives it):
//   s8<MR>(x, ldx, b, k, c):      c[r][j] = sum_{kk < k} x[r][kk] * W[j][kk]
//                                 over a whole s8 panel (rows 0 .. ceil(k/4));
//   s4<MR>(x, ldx, b, k8b, k8e, c): the same over s4 rows [k8b, k8e) (one group),
//                                 x indexed from element 8 * k8b.
// Weights are widened to float exactly; the float sum order is fixed (k ascending per
// lane), so results are deterministic for a given ISA (not across ISAs: lane-wise
// sums of different widths round differently; tests use a scale-derived tolerance).
#ifndef LOWBIT_ARCH_PORTABLE_GEMM_F32_KERNEL_HPP_
#define LOWBIT_ARCH_PORTABLE_GEMM_F32_KERNEL_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace portable {

struct gemm_f32_kernels {
  static constexpr int mr = 4;

  template <int MR>
  static void s8(const float* x, std::int64_t ldx, const std::uint8_t* b, std::int64_t k,
                 float* c) noexcept {
    float acc[MR][16] = {};
    for (std::int64_t kk = 0; kk < k; ++kk) {
      const std::uint8_t* row = b + (kk / 4) * 64 + kk % 4;
      for (int r = 0; r < MR; ++r) {
        const float xv = x[r * ldx + kk];
        for (int j = 0; j < 16; ++j)
          acc[r][j] += xv * static_cast<float>(static_cast<std::int8_t>(row[4 * j]));
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int j = 0; j < 16; ++j) c[r * 16 + j] = acc[r][j];
  }

  template <int MR>
  static void s4(const float* x, std::int64_t ldx, const std::uint8_t* b, std::int64_t k8b,
                 std::int64_t k8e, float* c) noexcept {
    float acc[MR][16] = {};
    for (std::int64_t kk = 8 * k8b; kk < 8 * k8e; ++kk) {
      const std::int64_t k8 = kk / 8, i = kk % 8;
      const std::uint8_t* row = b + k8 * 64 + (i % 4);
      for (int r = 0; r < MR; ++r) {
        const float xv = x[r * ldx + kk];
        for (int j = 0; j < 16; ++j) {
          const int v = i < 4 ? (row[4 * j] & 0x0F) : (row[4 * j] >> 4);
          acc[r][j] += xv * static_cast<float>(v - 8);  // stored w + 8
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

#endif  // LOWBIT_ARCH_PORTABLE_GEMM_F32_KERNEL_HPP_
