// SPDX-License-Identifier: Apache-2.0
// quantized_tensor.hpp: a quantized tensor that owns its storage.
//
// What quantize() returns and packed_weights::pack() accepts: the parameters, the
// logical shape and the storage bytes in logical row-major order (int8 / uint8 one
// byte per element, int4 / uint4 two per byte, element 2i in the low nibble).
#ifndef LOWBIT_QUANTIZED_TENSOR_HPP_
#define LOWBIT_QUANTIZED_TENSOR_HPP_

#include <cstdint>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/storage.hpp"
#include "lowbit/quant_params.hpp"

LOWBIT_BEGIN_NAMESPACE

/// A quantized tensor that owns its storage: what the convenience overloads return.
struct quantized_tensor {
  quant_params params;
  std::vector<std::int64_t> shape;
  std::vector<std::uint8_t> data;  ///< storage_bytes(params.type, numel) bytes

  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (auto e : shape) n *= e;
    return n;
  }
  /// Logical element i as an integer.
  std::int32_t value(std::int64_t i) const noexcept {
    return detail::load_stored(params.type, data.data(), i);
  }
};

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_QUANTIZED_TENSOR_HPP_
