// SPDX-License-Identifier: Apache-2.0
// error.hpp: lowbit::error, the one exception type lowbit throws for bad input.
//
// Policy: every public entry point validates its arguments before it writes
// anything, and reports the first problem as a lowbit::error whose message names the
// function, the offending argument and its value (shape, index, file offset). Kernels
// below the API edge are noexcept and assume validated input. lowbit::error derives
// from std::invalid_argument, so `catch (const std::invalid_argument&)` also works.
#ifndef LOWBIT_ERROR_HPP_
#define LOWBIT_ERROR_HPP_

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "lowbit/detail/core/macros.hpp"

LOWBIT_BEGIN_NAMESPACE

/// Thrown for invalid arguments, shapes, parameters or malformed files.
class error : public std::invalid_argument {
 public:
  explicit error(const std::string& what) : std::invalid_argument(what) {}
};

namespace detail {

/// Builds a message from streamable pieces and throws lowbit::error.
template <class... Args>
[[noreturn]] LOWBIT_NOINLINE void fail(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  throw error(os.str());
}

}  // namespace detail

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_ERROR_HPP_
