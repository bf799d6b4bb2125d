// SPDX-License-Identifier: Apache-2.0
// view.hpp: non-owning views lowbit's functions read from and write to.
//
//   span<T>         a pointer and a length (C++17 has no std::span).
//   tensor_view<T>  a pointer, a shape and strides counted in ELEMENTS (not bytes),
//                   so a transposed or sliced Eigen/NumPy array is described
//                   without a copy. Strides may be any non-negative values;
//                   logical order is row-major over `shape` (last index fastest).
//
// Views never own or copy; the caller keeps the memory alive for the call.
#ifndef LOWBIT_VIEW_HPP_
#define LOWBIT_VIEW_HPP_

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/error.hpp"

LOWBIT_BEGIN_NAMESPACE

/// A contiguous run of `size()` elements starting at `data()`.
template <class T>
class span {
 public:
  using element_type = T;
  constexpr span() noexcept = default;
  constexpr span(T* data, std::size_t size) noexcept : data_(data), size_(size) {}
  template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  constexpr span(span<U> other) noexcept : data_(other.data()), size_(other.size()) {}
  template <class A, class U = std::remove_const_t<T>>
  span(std::vector<U, A>& v) noexcept : data_(v.data()), size_(v.size()) {}  // NOLINT
  template <class A, class U = std::remove_const_t<T>, class TT = T,
            class = std::enable_if_t<std::is_const_v<TT>>>
  span(const std::vector<U, A>& v) noexcept : data_(v.data()), size_(v.size()) {}  // NOLINT

  constexpr T* data() const noexcept { return data_; }
  constexpr std::size_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T& operator[](std::size_t i) const noexcept { return data_[i]; }
  constexpr T* begin() const noexcept { return data_; }
  constexpr T* end() const noexcept { return data_ + size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

/// An N-D strided view. `strides[d]` is the distance in elements between
/// consecutive indices along dimension d.
template <class T>
struct tensor_view {
  T* data = nullptr;
  std::vector<std::int64_t> shape;
  std::vector<std::int64_t> strides;

  tensor_view() = default;
  /// Strided view; shape and strides must have the same rank.
  tensor_view(T* d, std::vector<std::int64_t> s, std::vector<std::int64_t> st)
      : data(d), shape(std::move(s)), strides(std::move(st)) {
    if (shape.size() != strides.size())
      detail::fail("tensor_view: shape has rank ", shape.size(), " but strides has rank ",
                   strides.size());
    for (std::size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] < 0) detail::fail("tensor_view: negative extent ", shape[i], " at dim ", i);
      if (strides[i] < 0) detail::fail("tensor_view: negative stride ", strides[i], " at dim ", i);
    }
  }
  /// Contiguous row-major view.
  tensor_view(T* d, std::vector<std::int64_t> s) : data(d), shape(std::move(s)) {
    strides.assign(shape.size(), 1);
    for (std::size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
    for (std::size_t i = 0; i < shape.size(); ++i)
      if (shape[i] < 0) detail::fail("tensor_view: negative extent ", shape[i], " at dim ", i);
  }
  /// 1-D contiguous view of a span.
  tensor_view(span<T> s)  // NOLINT: implicit on purpose
      : data(s.data()), shape{static_cast<std::int64_t>(s.size())}, strides{1} {}
  template <class U, class = std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>>>
  tensor_view(const tensor_view<U>& o)  // NOLINT: T* -> const T*
      : data(o.data), shape(o.shape), strides(o.strides) {}

  int rank() const noexcept { return static_cast<int>(shape.size()); }
  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (auto e : shape) n *= e;
    return n;
  }
  bool is_contiguous() const noexcept {
    std::int64_t expect = 1;
    for (std::size_t i = shape.size(); i-- > 0;) {
      if (shape[i] != 1 && strides[i] != expect) return false;
      expect *= shape[i];
    }
    return true;
  }
};

/// 2-D row-major matrix view with a leading dimension (row stride, in elements).
template <class T>
tensor_view<T> matrix_view(T* data, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  if (ld < cols) detail::fail("matrix_view: leading dimension ", ld, " < cols ", cols);
  return tensor_view<T>(data, {rows, cols}, {ld, 1});
}
template <class T>
tensor_view<T> matrix_view(T* data, std::int64_t rows, std::int64_t cols) {
  return matrix_view(data, rows, cols, cols);
}

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_VIEW_HPP_
