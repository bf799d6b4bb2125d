// SPDX-License-Identifier: Apache-2.0
// arch/portable/pack.hpp: INT4 nibble packing, the scalar rule (pack.hpp has the layout:
// element 2i in the low nibble of byte i).
#ifndef LOWBIT_ARCH_PORTABLE_PACK_HPP_
#define LOWBIT_ARCH_PORTABLE_PACK_HPP_

#include <cstdint>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace arch {
namespace portable {

/// n values (one per byte, low nibble used) -> (n + 1) / 2 bytes; returns n.
inline std::int64_t pack_nibbles(const std::uint8_t* in, std::int64_t n,
                                 std::uint8_t* out) noexcept {
  for (std::int64_t i = 0; i < n; i += 2) {
    const int lo = in[i] & 0x0F;
    const int hi = i + 1 < n ? (in[i + 1] & 0x0F) : 0;
    out[i / 2] = static_cast<std::uint8_t>(lo | (hi << 4));
  }
  return n;
}

/// (n + 1) / 2 packed bytes -> n values (sign-extended when Signed); returns n.
template <bool Signed>
inline std::int64_t unpack_nibbles(const std::uint8_t* in, std::int64_t n,
                                   std::uint8_t* out) noexcept {
  for (std::int64_t i = 0; i < n; ++i) {
    int v = (in[i / 2] >> ((i % 2) * 4)) & 0x0F;
    if (Signed && v >= 8) v -= 16;
    out[i] = static_cast<std::uint8_t>(v);
  }
  return n;
}

}  // namespace portable
}  // namespace arch
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ARCH_PORTABLE_PACK_HPP_
