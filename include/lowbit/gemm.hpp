// SPDX-License-Identifier: Apache-2.0
// gemm.hpp: the integer GEMM y[M x N] = x[M x K] * W^T with a fused epilogue.
//
// Terminology (used everywhere in lowbit, never "lhs/rhs"):
//   activations  x [M x K], the dynamic side: uint8 (affine, with a zero point) or
//                int8 (symmetric), row-major with a row stride; quantized per call.
//   weights      W [N x K], the static side, quantized and packed ONCE into a
//                packed_weights (packed_weights.hpp), like torch.nn.Linear.weight.
//   M rows (tokens / batch), N output channels, K depth.
//
// What is computed (the definition is lowbit::reference::gemm):
//   acc[m][n] = sum_k (x[m][k] - zx) * (W[n][k] - zw[n])                 int32, exact
// then ONE epilogue, chosen with an `epilogue` value:
//   int32       y = acc                      (s4: acc summed over all groups, unscaled)
//   f32         s8: y = float(acc) * (sx[m] * sw[n]) + bias[n]
//               s4: y = (sum_g float(acc_g) * sw[n][g]) * sx[m] + bias[n]
//               then clamp to [lo, hi] (relu() sets lo = 0)
//   requantize  y = clamp(zy + round_half_even(float(acc + bias_q[n]) * mult[n]), lo, hi)
//               (acc + bias_q summed in int64, then rounded once to float)
//               mult[n] = (sx * sw[n]) / sy, bias_q[n] = round_half_even(bias[n] / (sx * sw[n]))
//               (s8 weights, per-tensor activation scale; the core's float requantize rule)
// sx is per tensor or per row (per token). Floats are computed in float32 with a
// multiply and an add, each rounded to nearest even (no FMA). The AVX-512 kernels
// guarantee it with embedded rounding; the other paths and lowbit::reference are
// plain C++, which GCC contracts into FMAs when the including file is built with FMA
// enabled (-mfma, -march=x86-64-v3 or native) under its default -ffp-contract=fast:
// such builds can differ from the AVX-512 path by an ulp in f32 outputs with a bias
// or s4 weights; add -ffp-contract=off for bit-identical f32 results on every path.
// (int32 and requantize results are exact integers either way.)
//
// Dispatch and threads: the kernels are those of the kernel table the weights were
// packed for (packed_weights::level(), packed_weights::table()), never best_isa() at
// call time. Threading is opt-in (gemm_context::threads): output
// channel panels are split statically, so results never depend on the thread count.
// The int32 accumulation is exact for K <= max_k() (packed_weights.hpp), enforced when
// packing. Bad input throws lowbit::error naming the problem; nothing is written then.
#ifndef LOWBIT_GEMM_HPP_
#define LOWBIT_GEMM_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/gemm/driver.hpp"
#include "lowbit/error.hpp"
#include "lowbit/gemm_types.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/packed_weights.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

/// The names of the GEMM kernels that weights packed for `level` run: the kernel table
/// of arch/<level>/kernels.hpp, named as XNNPACK names its kernels (format, tile rows x
/// channels, K interleave, ISA, route), e.g. "s8_4x16c4__avx2_sign", "s4_8x16c8__avx512vnni".
struct gemm_kernel_names {
  const char* s8;       ///< int8 weights
  const char* s8_wide;  ///< int8 weights from s8_wide_min_rows rows on; null: s8 always
  std::int64_t s8_wide_min_rows;
  const char* s8_u7;  ///< int8 weights, activations all < 128 (any M); null: none
  const char* s4;     ///< int4 per-group weights
};
inline gemm_kernel_names gemm_kernels(isa level) noexcept {
  const detail::kernel_table& t = detail::table_for(level);
  return {t.gemm.s8_name, t.gemm.s8_wide_name, t.gemm.wide_min_rows, t.gemm.s8_u7_name,
          t.gemm.s4_name};
}

/// y = epilogue(x * W^T). See the file comment.
inline void gemm(const activations& x, const packed_weights& w, const epilogue& e, output y,
                 const gemm_context& ctx = {}) {
  detail::gemm_call call;
  detail::validate_gemm(call, x, w, e, y, ctx);
  detail::run_gemm(call);
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_GEMM_HPP_
