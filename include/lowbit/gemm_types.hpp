// SPDX-License-Identifier: Apache-2.0
// gemm_types.hpp: the value types of a GEMM call (activations, epilogue, output,
// gemm_context). gemm.hpp documents what they mean and holds gemm(); these live apart
// so the driver (detail/gemm/driver.hpp) and the layers can name them without gemm().
#ifndef LOWBIT_GEMM_TYPES_HPP_
#define LOWBIT_GEMM_TYPES_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "lowbit/detail/core/macros.hpp"
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

#endif  // LOWBIT_GEMM_TYPES_HPP_
