// SPDX-License-Identifier: Apache-2.0
// The version has one source (version.hpp); CMake parses it, the macros expose it.
#include <catch2/catch.hpp>
#include <cstring>
#include <string>

#include "lowbit/version.hpp"

TEST_CASE("version macros agree with CMake's project version", "[version]") {
  const std::string from_macros = std::to_string(LOWBIT_VERSION_MAJOR) + "." +
                                  std::to_string(LOWBIT_VERSION_MINOR) + "." +
                                  std::to_string(LOWBIT_VERSION_PATCH);
  CHECK(from_macros == LOWBIT_CMAKE_VERSION);
  CHECK(std::string(LOWBIT_VERSION_STRING) == LOWBIT_CMAKE_VERSION);
  CHECK(LOWBIT_VERSION ==
        LOWBIT_VERSION_MAJOR * 10000 + LOWBIT_VERSION_MINOR * 100 + LOWBIT_VERSION_PATCH);
}

// Each generated TU in header_check/ includes one public header first and defines
// lowbit_header_check_<id> = "<path>". Referencing them all here makes the link
// fail if a TU is missing, and the count check catches a header the glob skipped.
#define X(id) extern const char* const lowbit_header_check_##id;
LOWBIT_PUBLIC_HEADER_LIST
#undef X

TEST_CASE("every public header compiles on its own", "[version][headers]") {
  int n = 0;
#define X(id) \
  ++n;        \
  CHECK(std::strncmp(lowbit_header_check_##id, "lowbit/", 7) == 0);
  LOWBIT_PUBLIC_HEADER_LIST
#undef X
  CHECK(n == LOWBIT_PUBLIC_HEADER_COUNT);
  CHECK(n >= 5);
}
