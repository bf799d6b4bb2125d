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
// Dispatch and threads: the kernels are those of the ISA the weights were packed for
// (packed_weights::level()). Threading is opt-in (gemm_context::threads): output
// channel panels are split statically, so results never depend on the thread count.
// The int32 accumulation is exact for K <= max_k() (packed_weights.hpp), enforced when
// packing. Bad input throws lowbit::error naming the problem; nothing is written then.
#ifndef LOWBIT_GEMM_HPP_
#define LOWBIT_GEMM_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "lowbit/detail/macros.hpp"
#include "lowbit/error.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/packed_weights.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

/// The activation side of a GEMM call: a view, not a copy.
struct activations {
  const void* data = nullptr;
  lowbit::dtype type = lowbit::dtype::uint8;  ///< uint8 (affine) or int8 (symmetric)
  std::int64_t m = 0, k = 0;
  std::int64_t ld = 0;          ///< row stride in elements, >= k
  std::int32_t zero_point = 0;  ///< uint8 only; int8 activations have zero point 0
  span<const float> scales;     ///< 1 (per tensor) or m (per row); unused for int32

  static activations u8(const std::uint8_t* d, std::int64_t m, std::int64_t k, std::int64_t ld,
                        std::int32_t zero_point, span<const float> scales = {}) {
    return {d, lowbit::dtype::uint8, m, k, ld, zero_point, scales};
  }
  static activations s8(const std::int8_t* d, std::int64_t m, std::int64_t k, std::int64_t ld,
                        span<const float> scales = {}) {
    return {d, lowbit::dtype::int8, m, k, ld, 0, scales};
  }
};

/// The output stage (ruy's MulParams): one small value object.
struct epilogue {
  enum class kind : std::uint8_t { int32, f32, requantize };
  kind type = kind::int32;
  span<const float> bias;                              ///< empty or N floats (f32, requantize)
  float lo = -std::numeric_limits<float>::infinity();  ///< f32 clamp
  float hi = std::numeric_limits<float>::infinity();
  lowbit::dtype out_type = lowbit::dtype::uint8;  ///< requantize: uint8 or int8
  float out_scale = 1.0f;                         ///< requantize: sy
  std::int32_t out_zero_point = 0;                ///< requantize: zy
  bool fuse_relu = false;                         ///< requantize: clamp below at zy

  static epilogue int32() { return {}; }
  static epilogue f32(span<const float> bias = {}) {
    epilogue e;
    e.type = kind::f32;
    e.bias = bias;
    return e;
  }
  static epilogue requantize(lowbit::dtype out, float out_scale, std::int32_t out_zero_point,
                             span<const float> bias = {}) {
    epilogue e;
    e.type = kind::requantize;
    e.out_type = out;
    e.out_scale = out_scale;
    e.out_zero_point = out_zero_point;
    e.bias = bias;
    return e;
  }
  /// ReLU: f32 clamps at 0, requantize at the output zero point.
  epilogue& relu() {
    if (type == kind::requantize) {
      fuse_relu = true;
    } else {
      lo = std::max(lo, 0.0f);
    }
    return *this;
  }
  /// f32 clamp: intersects [lo, hi] with [l, h], so relu().clamp(-1, 6) is [0, 6].
  epilogue& clamp(float l, float h) {
    lo = (std::isnan(l) || l > lo) ? l : lo;  // NaN is kept, for gemm() to reject
    hi = (std::isnan(h) || h < hi) ? h : hi;
    return *this;
  }
};

/// Where the GEMM writes: a row-major [M x N] buffer with row stride `ld` (elements).
struct output {
  void* data = nullptr;
  enum class kind : std::uint8_t { int32, f32, u8, s8 } type = kind::int32;
  std::int64_t ld = 0;

  output(std::int32_t* d, std::int64_t l) : data(d), type(kind::int32), ld(l) {}
  output(float* d, std::int64_t l) : data(d), type(kind::f32), ld(l) {}
  output(std::uint8_t* d, std::int64_t l) : data(d), type(kind::u8), ld(l) {}
  output(std::int8_t* d, std::int64_t l) : data(d), type(kind::s8), ld(l) {}
};

/// Execution options.
struct gemm_context {
  /// Upper bound, >= 1; results are identical for any value. Small calls use fewer
  /// (each thread gets at least 2^18 multiply-adds: waking one costs microseconds).
  int threads = 1;
};

LOWBIT_END_NAMESPACE

#include "lowbit/detail/gemm_driver.hpp"

LOWBIT_BEGIN_NAMESPACE

/// y = epilogue(x * W^T). See the file comment.
inline void gemm(const activations& x, const packed_weights& w, const epilogue& e, output y,
                 const gemm_context& ctx = {}) {
  const detail::gemm_call call = detail::validate_gemm(x, w, e, y, ctx);
  detail::run_gemm(call);
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_GEMM_HPP_
