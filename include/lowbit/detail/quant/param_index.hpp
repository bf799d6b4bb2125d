// SPDX-License-Identifier: Apache-2.0
// detail/quant/param_index.hpp: which (scale, zero_point) pair an element uses, and a
// walker over N-D strided views in logical (row-major) order.
#ifndef LOWBIT_DETAIL_QUANT_PARAM_INDEX_HPP_
#define LOWBIT_DETAIL_QUANT_PARAM_INDEX_HPP_

#include <cstdint>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/quant_params.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace detail {

/// Resolved granularity for one shape: param index of element (idx...) is
///   per_tensor: 0; per_channel: idx[axis]; per_group: idx[0] * groups + idx[1] / gs.
struct param_layout {
  granularity::kind kind = granularity::kind::per_tensor;
  int axis = 0;                 ///< resolved (non-negative) channel axis
  std::int64_t group_size = 1;  ///< per_group only
  std::int64_t groups_per_row = 1;

  param_layout(const quant_params& p, const std::vector<std::int64_t>& shape)
      : kind(p.granularity.type) {
    const int r = static_cast<int>(shape.size());
    if (kind == granularity::kind::per_channel)
      axis = p.granularity.axis < 0 ? p.granularity.axis + r : p.granularity.axis;
    if (kind == granularity::kind::per_group) {
      group_size = p.granularity.group_size;
      groups_per_row = shape[1] / group_size;
    }
  }

  std::int64_t index(const std::int64_t* idx) const noexcept {
    switch (kind) {
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

/// Calls f(flat_logical_index, element_offset, multi_index) for every element of an
/// N-D view in row-major logical order. Rank 0 is one element.
template <class F>
void for_each_index(const std::vector<std::int64_t>& shape,
                    const std::vector<std::int64_t>& strides, F&& f) {
  const std::size_t r = shape.size();
  for (auto e : shape)
    if (e == 0) return;
  std::vector<std::int64_t> idx(r, 0);
  std::int64_t flat = 0, off = 0;
  for (;;) {
    f(flat, off, idx.data());
    ++flat;
    std::size_t d = r;
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

#endif  // LOWBIT_DETAIL_QUANT_PARAM_INDEX_HPP_
