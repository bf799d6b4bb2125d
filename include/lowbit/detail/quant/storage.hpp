// SPDX-License-Identifier: Apache-2.0
// detail/quant/storage.hpp: one logical element of quantized storage, read or written.
//
// int8 / uint8: one byte per element. int4 / uint4: two per byte, element 2i in the
// LOW nibble of byte i (PyTorch quint4x2, ONNX int4), two's complement for int4.
#ifndef LOWBIT_DETAIL_QUANT_STORAGE_HPP_
#define LOWBIT_DETAIL_QUANT_STORAGE_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/error.hpp"
#include "lowbit/quant_params.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// Writes integer value `v` (already in the dtype's range) as logical element `i`
/// of a storage buffer: one byte per element, or a nibble for INT4 (element 2i in
/// the low nibble).
inline void store_stored(dtype t, std::uint8_t* out, std::int64_t i, std::int32_t v) noexcept {
  if (bits(t) == 8) {
    out[i] = static_cast<std::uint8_t>(v & 0xFF);
  } else {
    std::uint8_t& b = out[i / 2];
    const std::uint8_t nib = static_cast<std::uint8_t>(v & 0x0F);
    b = (i % 2 == 0) ? static_cast<std::uint8_t>((b & 0xF0) | nib)
                     : static_cast<std::uint8_t>((b & 0x0F) | (nib << 4));
  }
}

/// Reads logical element `i` of a storage buffer as an integer.
inline std::int32_t load_stored(dtype t, const std::uint8_t* in, std::int64_t i) noexcept {
  switch (t) {
    case dtype::int8:
      return static_cast<std::int8_t>(in[i]);
    case dtype::uint8:
      return in[i];
    case dtype::uint4:
      return (in[i / 2] >> ((i % 2) * 4)) & 0x0F;
    case dtype::int4: {
      const int nib = (in[i / 2] >> ((i % 2) * 4)) & 0x0F;
      return nib >= 8 ? nib - 16 : nib;
    }
  }
  return 0;
}

/// Refuses a storage element type that does not match the dtype: int8 uses int8_t,
/// uint8 / int4 / uint4 use uint8_t.
inline void check_storage_type(dtype t, bool is_int8_t, const char* who) {
  if (is_int8_t && t != dtype::int8)
    fail(who, ": an int8_t buffer was given for dtype ", to_string(t),
         " (uint8, int4 and uint4 use uint8_t storage)");
  if (!is_int8_t && t == dtype::int8)
    fail(who, ": a uint8_t buffer was given for dtype int8 (use int8_t storage)");
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_QUANT_STORAGE_HPP_
