// SPDX-License-Identifier: Apache-2.0
// arch/avx_vnni/gemm_kernel-inl.hpp: the ymm vpdpbusd microkernel BODY, no include guard.
//
// Included twice, Highway-style, each time inside a target region and namespace
// with LOWBIT_YMM_DPBUSD naming the instruction:
//   arch/avx_vnni/gemm_kernel.hpp       VEX vpdpbusd  (_mm256_dpbusd_avx_epi32): the
//                                       avx_vnni kernels;
//   arch/avx512_vnni/gemm_kernel_ymm.hpp EVEX vpdpbusd (_mm256_dpbusd_epi32, AVX512VL):
//                                       the same kernel on AVX-512 CPUs, which lets
//                                       the avx_vnni code be verified on machines
//                                       without AVX-VNNI (AMD Zen 4, for one).
// The two instructions compute the same thing; only the encoding differs.
//
// Register map (s8, MR = 4): a packed row (64 bytes) is two ymm, channels 0-7 and 8-15.
//
//   ymm0..ymm7   acc[r][h]  row r, half h: int32 lanes = 8 channels
//   ymm8, ymm9   w[h]       packed row halves
//   ymm10        a          a[r][4k4 .. 4k4+3] broadcast to 8 lanes
//
//   per k4:  for r, h: acc[r][h] = vpdpbusd(acc[r][h], a[r], w[h])

struct gemm_kernels {
  static constexpr int mr = 4;

  static __m256i bcast4(const std::uint8_t* p) noexcept {
    std::int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }

  template <int MR>
  static void s8(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b, std::int64_t kb,
                 std::int64_t ke, std::int32_t* c) noexcept {
    __m256i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (std::int64_t k4 = kb; k4 < ke; ++k4) {
      const __m256i w0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k4 * 64));
      const __m256i w1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k4 * 64 + 32));
      for (int r = 0; r < MR; ++r) {
        const __m256i av = bcast4(a + r * lda + 4 * k4);
        acc[r][0] = LOWBIT_YMM_DPBUSD(acc[r][0], av, w0);
        acc[r][1] = LOWBIT_YMM_DPBUSD(acc[r][1], av, w1);
      }
    }
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16 + 8), acc[r][1]);
    }
  }

  template <int MR>
  static void s4(const std::uint8_t* a, std::int64_t lda, const std::uint8_t* b, std::int64_t kb,
                 std::int64_t ke, std::int32_t* c) noexcept {
    const __m256i nib = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
    __m256i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (std::int64_t k8 = kb; k8 < ke; ++k8) {
      __m256i lo[2], hi[2];
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + k8 * 64 + 32 * h));
        lo[h] = _mm256_sub_epi8(_mm256_and_si256(v, nib), eight);  // stored w + 8
        hi[h] = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), nib), eight);
      }
      for (int r = 0; r < MR; ++r) {
        const __m256i a0 = bcast4(a + r * lda + 8 * k8);
        const __m256i a1 = bcast4(a + r * lda + 8 * k8 + 4);
        for (int h = 0; h < 2; ++h) {
          acc[r][h] = LOWBIT_YMM_DPBUSD(acc[r][h], a0, lo[h]);
          acc[r][h] = LOWBIT_YMM_DPBUSD(acc[r][h], a1, hi[h]);
        }
      }
    }
    for (int r = 0; r < MR; ++r) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16), acc[r][0]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * 16 + 8), acc[r][1]);
    }
  }
};
