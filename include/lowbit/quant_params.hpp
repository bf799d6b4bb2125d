// SPDX-License-Identifier: Apache-2.0
// quant_params.hpp: what a quantized number means.
//
// The affine map
// --------------
//   real = scale * (q - zero_point)
//
// q is an integer of a small `dtype` (int8, uint8, int4, uint4), `scale` a positive
// float and `zero_point` the integer that represents real 0 EXACTLY. Exactness of
// zero matters: zero padding, ReLU outputs and sparse weights must survive
// quantization unchanged, and the integer GEMM relies on it to move zero points out
// of the inner loop (gemmlowp's offset algebra).
//
// `scheme` says how zero_point is chosen:
//   symmetric  zero_point is fixed at the centre of the range: 0 for signed types,
//              128 for uint8 and 8 for uint4 (PyTorch's quint8 convention).
//   affine     zero_point is free in [quant_min, quant_max] so that an asymmetric
//              range [min, max] uses every integer level.
//
// `granularity` says which elements share a (scale, zero_point) pair:
//   per_tensor             one pair for the whole tensor;
//   per_channel{axis}      one pair per index along `axis` of an N-D tensor (for a
//                          weight [N x K] that is axis 0, one per output row; for
//                          activations [M x K], axis 0 is "per token");
//   per_group{group_size}  for a 2-D [rows x K] tensor, one pair per `group_size`
//                          consecutive elements of a row (llama.cpp / GPTQ / ONNX
//                          MatMulNBits). Scales are stored row-major [rows x K/group].
//
// quant_min/quant_max may narrow the dtype's range (7-bit reduce_range, the narrow
// [-127, 127] symmetric convention); they never widen it.
//
// INT4 storage: two elements per byte, element 2i in the LOW nibble and 2i+1 in the
// high nibble (PyTorch quint4x2 and ONNX order); signed int4 is two's complement
// in [-8, 7]. An odd count leaves the last high nibble zero.
#ifndef LOWBIT_QUANT_PARAMS_HPP_
#define LOWBIT_QUANT_PARAMS_HPP_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/error.hpp"

LOWBIT_BEGIN_NAMESPACE

/// Storage type of quantized values.
enum class dtype : std::uint8_t { int8, uint8, int4, uint4 };

constexpr int bits(dtype t) noexcept { return (t == dtype::int8 || t == dtype::uint8) ? 8 : 4; }
constexpr bool is_signed(dtype t) noexcept { return t == dtype::int8 || t == dtype::int4; }
/// Smallest value the type holds: -128, 0, -8, 0.
constexpr std::int32_t dtype_min(dtype t) noexcept {
  return is_signed(t) ? -(1 << (bits(t) - 1)) : 0;
}
/// Largest value the type holds: 127, 255, 7, 15.
constexpr std::int32_t dtype_max(dtype t) noexcept {
  return is_signed(t) ? (1 << (bits(t) - 1)) - 1 : (1 << bits(t)) - 1;
}
/// Bytes needed to store `n` elements (INT4: two per byte, rounded up).
constexpr std::size_t storage_bytes(dtype t, std::size_t n) noexcept {
  return bits(t) == 8 ? n : (n + 1) / 2;
}
constexpr const char* to_string(dtype t) noexcept {
  switch (t) {
    case dtype::int8:
      return "int8";
    case dtype::uint8:
      return "uint8";
    case dtype::int4:
      return "int4";
    case dtype::uint4:
      return "uint4";
  }
  return "?";
}

/// How the zero point is chosen (see the file comment).
enum class scheme : std::uint8_t { symmetric, affine };
constexpr const char* to_string(scheme s) noexcept {
  return s == scheme::symmetric ? "symmetric" : "affine";
}

/// The zero point a symmetric scheme uses for `t` on [qmin, qmax]: 0 for signed
/// types, the upper middle (qmin + qmax + 1) / 2 for unsigned ones (128 for uint8).
constexpr std::int32_t symmetric_zero_point(dtype t, std::int32_t qmin,
                                            std::int32_t qmax) noexcept {
  return is_signed(t) ? 0 : (qmin + qmax + 1) / 2;
}

/// Granularity tags.
struct per_tensor {};
struct per_channel {
  int axis = 0;  ///< may be negative, counted from the last dimension
};
struct per_group {
  std::int64_t group_size = 128;  ///< consecutive elements along the last (K) axis
};

/// Which elements share one (scale, zero_point): a tagged union of the three tags.
struct granularity {
  enum class kind : std::uint8_t { per_tensor, per_channel, per_group };
  kind type = kind::per_tensor;
  int axis = 0;
  std::int64_t group_size = 0;

  granularity() = default;
  granularity(per_tensor) noexcept {}  // NOLINT: implicit on purpose
  granularity(per_channel c) noexcept : type(kind::per_channel), axis(c.axis) {}          // NOLINT
  granularity(per_group g) noexcept : type(kind::per_group), group_size(g.group_size) {}  // NOLINT

  bool is_per_tensor() const noexcept { return type == kind::per_tensor; }
  bool is_per_channel() const noexcept { return type == kind::per_channel; }
  bool is_per_group() const noexcept { return type == kind::per_group; }
};

inline const char* to_string(granularity::kind k) noexcept {
  switch (k) {
    case granularity::kind::per_tensor:
      return "per_tensor";
    case granularity::kind::per_channel:
      return "per_channel";
    case granularity::kind::per_group:
      return "per_group";
  }
  return "?";
}

/// Everything needed to quantize a tensor of a given shape and to read it back.
struct quant_params {
  lowbit::dtype type = lowbit::dtype::int8;
  lowbit::scheme scheme = lowbit::scheme::symmetric;
  lowbit::granularity granularity{};
  std::vector<float> scales;              ///< one per group of elements sharing params
  std::vector<std::int32_t> zero_points;  ///< same length as scales
  std::int32_t quant_min = -128;
  std::int32_t quant_max = 127;

  /// One (scale, zero_point) for the whole tensor, full range of `t`.
  static quant_params tensor(lowbit::dtype t, float scale, std::int32_t zero_point,
                             lowbit::scheme s = lowbit::scheme::affine) {
    quant_params p;
    p.type = t;
    p.scheme = s;
    p.scales = {scale};
    p.zero_points = {zero_point};
    p.quant_min = dtype_min(t);
    p.quant_max = dtype_max(t);
    return p;
  }

  /// Number of (scale, zero_point) pairs a tensor of `shape` needs. Throws if the
  /// granularity does not fit the shape (axis out of range, group not dividing K).
  std::size_t expected_count(const std::vector<std::int64_t>& shape) const {
    switch (granularity.type) {
      case granularity::kind::per_tensor:
        return 1;
      case granularity::kind::per_channel: {
        const int r = static_cast<int>(shape.size());
        const int a = granularity.axis < 0 ? granularity.axis + r : granularity.axis;
        if (r == 0 || a < 0 || a >= r)
          detail::fail("quant_params: per_channel axis ", granularity.axis,
                       " out of range for a tensor of rank ", r);
        return static_cast<std::size_t>(shape[static_cast<std::size_t>(a)]);
      }
      case granularity::kind::per_group: {
        if (shape.size() != 2)
          detail::fail("quant_params: per_group needs a 2-D [rows x K] tensor, got rank ",
                       shape.size());
        const std::int64_t g = granularity.group_size;
        if (g <= 0) detail::fail("quant_params: group_size must be > 0, got ", g);
        if (shape[1] % g != 0)
          detail::fail("quant_params: group_size ", g, " does not divide K = ", shape[1]);
        return static_cast<std::size_t>(shape[0] * (shape[1] / g));
      }
    }
    return 1;
  }

  /// Checks ranges, scales and zero points (independent of any shape).
  void validate() const {
    if (quant_min >= quant_max)
      detail::fail("quant_params: quant_min (", quant_min, ") must be < quant_max (", quant_max,
                   ")");
    if (quant_min < dtype_min(type) || quant_max > dtype_max(type))
      detail::fail("quant_params: range [", quant_min, ", ", quant_max, "] does not fit ",
                   to_string(type), " [", dtype_min(type), ", ", dtype_max(type), "]");
    if (scales.empty()) detail::fail("quant_params: no scales");
    if (zero_points.size() != scales.size())
      detail::fail("quant_params: ", scales.size(), " scales but ", zero_points.size(),
                   " zero points");
    if (granularity.is_per_group() && granularity.group_size <= 0)
      detail::fail("quant_params: group_size must be > 0, got ", granularity.group_size);
    for (std::size_t i = 0; i < scales.size(); ++i) {
      const float s = scales[i];
      if (!(s > 0.0f) || !std::isfinite(s) || !std::isfinite(1.0f / s))
        detail::fail("quant_params: scale[", i, "] = ", s,
                     " is invalid (must be finite, > 0, with a finite reciprocal)");
      const std::int32_t z = zero_points[i];
      if (z < quant_min || z > quant_max)
        detail::fail("quant_params: zero_point[", i, "] = ", z, " outside [", quant_min, ", ",
                     quant_max, "]");
    }
  }

  /// validate() plus: the number of pairs matches what `shape` needs.
  void validate(const std::vector<std::int64_t>& shape) const {
    validate();
    const std::size_t n = expected_count(shape);
    if (scales.size() != n)
      detail::fail("quant_params: ", to_string(granularity.type), " needs ", n,
                   " scales for this shape, got ", scales.size());
  }
};

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_QUANT_PARAMS_HPP_
