// SPDX-License-Identifier: Apache-2.0
// The Catch2 v2 runner; every test_*.cpp is its own translation unit.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
