// SPDX-License-Identifier: Apache-2.0
// support/random.hpp: seeded random matrices for the layer tests.
#ifndef LOWBIT_TESTS_SUPPORT_RANDOM_HPP_
#define LOWBIT_TESTS_SUPPORT_RANDOM_HPP_

#include <cstdint>
#include <random>

#include "lowbit/eigen.hpp"

namespace lowbit_test {

/// [r x c] with entries N(0, sd), from mt19937(seed).
inline lowbit::matrixf randn(Eigen::Index r, Eigen::Index c, float sd, std::uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  lowbit::matrixf m(r, c);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = d(g);
  return m;
}

}  // namespace lowbit_test

#endif  // LOWBIT_TESTS_SUPPORT_RANDOM_HPP_
