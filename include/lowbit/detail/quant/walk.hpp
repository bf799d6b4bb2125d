// SPDX-License-Identifier: Apache-2.0
// detail/quant/walk.hpp: how lowbit walks N-D strided views, once for every subsystem.
//
//   segmentation          how a granularity splits a shape into segments (one parameter
//                         pair of quantize, one range of an observer)
//   for_each_index(_n)    every element in row-major logical order, with its offset in
//                         one (or N) strided views and its multi-index: the reference
//                         and the QAT ops, which work element by element
//   for_each_segment_run  runs of consecutive elements of one innermost row that share a
//                         segment, or (per_element) whose segment advances by one per
//                         element: what the kernels take (quantize runs, observer scans)
#ifndef LOWBIT_DETAIL_QUANT_WALK_HPP_
#define LOWBIT_DETAIL_QUANT_WALK_HPP_

#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/error.hpp"
#include "lowbit/quant_params.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// How a granularity splits one tensor into `count` segments (one range each).
struct segmentation {
  granularity::kind type = granularity::kind::per_tensor;
  int axis = 0;                     ///< per_channel: resolved, non-negative
  std::int64_t count = 1;           ///< number of segments
  std::int64_t group_size = 0;      ///< per_group only
  std::int64_t groups_per_row = 0;  ///< per_group only

  /// The segment (= parameter index) of the element at multi-index idx:
  /// per_tensor 0; per_channel idx[axis]; per_group idx[0] * groups_per_row + idx[1] / gs.
  std::int64_t index(const std::int64_t* idx) const noexcept {
    switch (type) {
      case granularity::kind::per_tensor:
        return 0;
      case granularity::kind::per_channel:
        return idx[axis];
      case granularity::kind::per_group:
        return idx[0] * groups_per_row + idx[1] / group_size;
    }
    return 0;
  }
};

/// Resolves `g` for the shape of `x`; `who` prefixes error messages.
inline segmentation make_segmentation(const std::vector<std::int64_t>& shape, const granularity& g,
                                      const char* who) {
  segmentation s;
  s.type = g.type;
  const int r = static_cast<int>(shape.size());
  switch (g.type) {
    case granularity::kind::per_tensor:
      break;
    case granularity::kind::per_channel: {
      const int a = g.axis < 0 ? g.axis + r : g.axis;
      if (r == 0 || a < 0 || a >= r)
        fail(who, ": per_channel axis ", g.axis, " out of range for a tensor of rank ", r);
      s.axis = a;
      s.count = shape[static_cast<std::size_t>(a)];
      break;
    }
    case granularity::kind::per_group: {
      if (r != 2) fail(who, ": per_group needs a 2-D [rows x K] tensor, got rank ", r);
      if (g.group_size <= 0) fail(who, ": group_size must be > 0, got ", g.group_size);
      if (shape[1] % g.group_size != 0)
        fail(who, ": group_size ", g.group_size, " does not divide K = ", shape[1]);
      s.group_size = g.group_size;
      s.groups_per_row = shape[1] / g.group_size;
      s.count = shape[0] * s.groups_per_row;
      break;
    }
  }
  return s;
}

/// make_segmentation for parameters already validated against `shape` (cannot fail).
inline segmentation segmentation_of(const quant_params& p, const std::vector<std::int64_t>& shape) {
  return make_segmentation(shape, p.granularity, "segmentation_of");
}

/// Calls f(offsets, multi_index) for every element of `shape` in row-major logical
/// order; offsets[k] is the element's offset in a view with strides `strides[k]`.
template <std::size_t N, class F>
void for_each_index_n(const std::vector<std::int64_t>& shape,
                      const std::array<const std::vector<std::int64_t>*, N>& strides, F&& f) {
  const std::size_t r = shape.size();
  for (auto e : shape)
    if (e == 0) return;
  std::vector<std::int64_t> idx(r, 0);
  std::array<std::int64_t, N> off{};
  for (;;) {
    f(off, idx.data());
    std::size_t d = r;
    for (;;) {
      if (d == 0) return;
      --d;
      ++idx[d];
      for (std::size_t k = 0; k < N; ++k) off[k] += (*strides[k])[d];
      if (idx[d] < shape[d]) break;
      for (std::size_t k = 0; k < N; ++k) off[k] -= (*strides[k])[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/// Calls f(flat, offset, multi_index) for every element of one strided view, in
/// row-major logical order (flat = 0, 1, ...).
template <class F>
void for_each_index(const std::vector<std::int64_t>& shape,
                    const std::vector<std::int64_t>& strides, F&& f) {
  std::int64_t flat = 0;
  for_each_index_n<1>(shape, {&strides},
                      [&](const std::array<std::int64_t, 1>& off, const std::int64_t* idx) {
                        f(flat++, off[0], idx);
                      });
}

/// Calls f(segment, offset, n, flat, per_element) for every innermost row of a view of
/// `shape` / `strides`, split into runs: `n` elements at offset, offset + st, ...
/// (st = strides.back()), the first of logical index `flat`. per_element false: the
/// whole run belongs to `segment`; true (per_channel on the last axis): element k of
/// the run belongs to segment + k. Rank 0 is one run of one element.
template <class F>
void for_each_segment_run(const std::vector<std::int64_t>& shape,
                          const std::vector<std::int64_t>& strides, const segmentation& s, F&& f) {
  const std::size_t r = shape.size();
  for (auto e : shape)
    if (e == 0) return;
  if (r == 0) {
    f(std::int64_t{0}, std::int64_t{0}, std::int64_t{1}, std::int64_t{0}, false);
    return;
  }
  const std::int64_t n = shape[r - 1];
  const std::int64_t st = strides[r - 1];
  std::vector<std::int64_t> idx(r - 1, 0);
  std::int64_t off = 0, flat = 0, row = 0;
  for (;;) {
    switch (s.type) {
      case granularity::kind::per_tensor:
        f(std::int64_t{0}, off, n, flat, false);
        break;
      case granularity::kind::per_channel:
        if (static_cast<std::size_t>(s.axis) == r - 1) {
          f(std::int64_t{0}, off, n, flat, true);
        } else {
          f(idx[static_cast<std::size_t>(s.axis)], off, n, flat, false);
        }
        break;
      case granularity::kind::per_group:
        for (std::int64_t g = 0; g < s.groups_per_row; ++g)
          f(row * s.groups_per_row + g, off + g * s.group_size * st, s.group_size,
            flat + g * s.group_size, false);
        break;
    }
    flat += n;
    ++row;
    std::size_t d = r - 1;
    for (;;) {
      if (d == 0) return;
      --d;
      ++idx[d];
      off += strides[d];
      if (idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace detail
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_DETAIL_QUANT_WALK_HPP_
