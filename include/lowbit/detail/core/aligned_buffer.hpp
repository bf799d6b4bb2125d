// SPDX-License-Identifier: Apache-2.0
// detail/core/aligned_buffer.hpp: a 64-byte aligned owning byte buffer, zero-initialized
// unless asked otherwise.
#ifndef LOWBIT_DETAIL_CORE_ALIGNED_BUFFER_HPP_
#define LOWBIT_DETAIL_CORE_ALIGNED_BUFFER_HPP_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// 64 bytes: one cache line, one zmm register, one AMX tile row.
inline constexpr std::size_t buffer_alignment = 64;

class aligned_buffer {
 public:
  /// Tag: the caller writes every byte before reading any (skips the zero fill).
  struct uninitialized_t {};
  static constexpr uninitialized_t uninitialized{};

  aligned_buffer() = default;
  explicit aligned_buffer(std::size_t bytes) : aligned_buffer(bytes, uninitialized) {
    if (bytes > 0) std::memset(data_.get(), 0, rounded(bytes));
  }
  aligned_buffer(std::size_t bytes, uninitialized_t) : size_(bytes) {
    if (bytes > 0)
      data_.reset(static_cast<std::uint8_t*>(
          ::operator new(rounded(bytes), std::align_val_t(buffer_alignment))));
  }
  aligned_buffer(const aligned_buffer& o) : aligned_buffer(o.size_) {
    if (size_ > 0) std::memcpy(data_.get(), o.data_.get(), size_);
  }
  aligned_buffer& operator=(const aligned_buffer& o) {
    if (this != &o) *this = aligned_buffer(o);
    return *this;
  }
  aligned_buffer(aligned_buffer&&) noexcept = default;
  aligned_buffer& operator=(aligned_buffer&&) noexcept = default;

  std::uint8_t* data() noexcept { return data_.get(); }
  const std::uint8_t* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }

 private:
  static std::size_t rounded(std::size_t bytes) noexcept {
    return (bytes + buffer_alignment - 1) / buffer_alignment * buffer_alignment;
  }
  struct deleter {
    void operator()(std::uint8_t* p) const noexcept {
      ::operator delete(p, std::align_val_t(buffer_alignment));
    }
  };
  std::unique_ptr<std::uint8_t[], deleter> data_;
  std::size_t size_ = 0;
};

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_CORE_ALIGNED_BUFFER_HPP_
