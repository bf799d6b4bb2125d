// SPDX-License-Identifier: Apache-2.0
// pack.hpp: portable INT4 nibble packing (two values per byte).
//
// Layout: element 2i in the LOW nibble of byte i, element 2i+1 in the high nibble
// (PyTorch quint4x2, ONNX int4/uint4). Signed values are two's complement nibbles
// in [-8, 7]; unsigned in [0, 15]. An odd count leaves the last high nibble zero.
// This is the interchange layout of quantized tensors and files; the GEMM repacks
// weights into its own kernel-specific layout (gemm.hpp), which is private.
//
// Errors: a value outside the nibble range (the message names its index and value)
// or an output buffer too small; nothing is written on error.
#ifndef LOWBIT_PACK_HPP_
#define LOWBIT_PACK_HPP_

#include <cstdint>

#include "lowbit/arch/portable/pack.hpp"
#include "lowbit/arch/tables.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/error.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// The table's nibble kernel on a prefix, the scalar rule on the rest.
inline void pack_nibbles(const kernel_table& kt, const std::uint8_t* in, std::int64_t n,
                         std::uint8_t* out) noexcept {
  const std::int64_t done = kt.quant.pack_nibbles(in, n, out);
  arch::portable::pack_nibbles(in + done, n - done, out + done / 2);
}

template <bool Signed>
inline void unpack_nibbles(const kernel_table& kt, const std::uint8_t* in, std::int64_t n,
                           std::uint8_t* out) noexcept {
  const std::int64_t done = kt.quant.unpack_nibbles[Signed](in, n, out);
  arch::portable::unpack_nibbles<Signed>(in + done / 2, n - done, out + done);
}

inline void check_pack_sizes(std::size_t n, std::size_t out, const char* who) {
  if (out < (n + 1) / 2)
    fail(who, ": output buffer too small: ", n, " values need ", (n + 1) / 2, " bytes, got ", out);
}

}  // namespace detail

/// Packs signed int4 values (each in [-8, 7]) two per byte.
inline void pack_int4(span<const std::int8_t> values, span<std::uint8_t> out) {
  detail::check_pack_sizes(values.size(), out.size(), "pack_int4");
  // min/max first (a vectorizable reduction); find the index only on failure
  std::int8_t lo = 0, hi = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    lo = values[i] < lo ? values[i] : lo;
    hi = values[i] > hi ? values[i] : hi;
  }
  if (lo < -8 || hi > 7)
    for (std::size_t i = 0; i < values.size(); ++i)
      if (values[i] < -8 || values[i] > 7)
        detail::fail("pack_int4: value ", int{values[i]}, " at index ", i, " outside [-8, 7]");
  detail::pack_nibbles(detail::best_table(), reinterpret_cast<const std::uint8_t*>(values.data()),
                       static_cast<std::int64_t>(values.size()), out.data());
}

/// Packs unsigned int4 values (each in [0, 15]) two per byte.
inline void pack_uint4(span<const std::uint8_t> values, span<std::uint8_t> out) {
  detail::check_pack_sizes(values.size(), out.size(), "pack_uint4");
  std::uint8_t hi = 0;
  for (std::size_t i = 0; i < values.size(); ++i) hi = values[i] > hi ? values[i] : hi;
  if (hi > 15)
    for (std::size_t i = 0; i < values.size(); ++i)
      if (values[i] > 15)
        detail::fail("pack_uint4: value ", int{values[i]}, " at index ", i, " outside [0, 15]");
  detail::pack_nibbles(detail::best_table(), values.data(),
                       static_cast<std::int64_t>(values.size()), out.data());
}

/// Unpacks out.size() signed int4 values from `packed`.
inline void unpack_int4(span<const std::uint8_t> packed, span<std::int8_t> out) {
  if (packed.size() < (out.size() + 1) / 2)
    detail::fail("unpack_int4: ", out.size(), " values need ", (out.size() + 1) / 2,
                 " packed bytes, got ", packed.size());
  detail::unpack_nibbles<true>(detail::best_table(), packed.data(),
                               static_cast<std::int64_t>(out.size()),
                               reinterpret_cast<std::uint8_t*>(out.data()));
}

/// Unpacks out.size() unsigned int4 values from `packed`.
inline void unpack_uint4(span<const std::uint8_t> packed, span<std::uint8_t> out) {
  if (packed.size() < (out.size() + 1) / 2)
    detail::fail("unpack_uint4: ", out.size(), " values need ", (out.size() + 1) / 2,
                 " packed bytes, got ", packed.size());
  detail::unpack_nibbles<false>(detail::best_table(), packed.data(),
                                static_cast<std::int64_t>(out.size()), out.data());
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_PACK_HPP_
