// SPDX-License-Identifier: Apache-2.0
// support/isa_sweep.hpp: run a test body once per ISA this machine can run.
#ifndef LOWBIT_TESTS_SUPPORT_ISA_SWEEP_HPP_
#define LOWBIT_TESTS_SUPPORT_ISA_SWEEP_HPP_

#include <catch2/catch.hpp>

#include "lowbit/isa.hpp"

namespace lowbit_test {

/// Caps dispatch at each available ISA in turn (restoring the cap afterwards) and
/// calls body(isa) inside a Catch section named after it. ISAs this CPU lacks are
/// reported once with WARN (Catch2 v2 has no SKIP).
template <class F>
void for_each_isa(F&& body) {
  for (lowbit::isa i : {lowbit::isa::portable, lowbit::isa::avx2, lowbit::isa::avx_vnni,
                        lowbit::isa::avx512_vnni, lowbit::isa::amx_int8}) {
    if (!lowbit::is_available(i)) {
      WARN("isa " << lowbit::to_string(i) << " not available on this CPU/OS: not tested here");
      continue;
    }
    DYNAMIC_SECTION("isa=" << lowbit::to_string(i)) {
      lowbit::set_max_isa(i);
      struct restore {
        ~restore() { lowbit::reset_max_isa(); }
      } r;
      REQUIRE(lowbit::best_isa() == i);
      body(i);
    }
  }
}

}  // namespace lowbit_test

#endif  // LOWBIT_TESTS_SUPPORT_ISA_SWEEP_HPP_
