// SPDX-License-Identifier: Apache-2.0
// list_isas: prints what lowbit detected on this machine, which ISA it will run and
// the GEMM kernels of each ISA's kernel table.
//
//   $ list_isas
//   $ LOWBIT_MAX_ISA=avx2 list_isas      # the same, with dispatch capped at avx2
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "lowbit/gemm.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/version.hpp"

#if defined(_MSC_VER)
#pragma warning(disable : 4996)  // std::getenv is fine for reading one variable
#endif

namespace {

void print_usage(std::FILE* out) {
  std::fputs(
      "usage: list_isas [--help]\n"
      "Prints the lowbit version, the CPU features lowbit detected, every ISA with\n"
      "whether this CPU, OS and build support it and the GEMM kernels of its table\n"
      "(int8 weights, int4 weights), the current cap and the ISA that lowbit\n"
      "dispatches to.\n"
      "Environment: LOWBIT_MAX_ISA=portable|avx2|avx_vnni|avx512_vnni|amx_int8 caps\n"
      "the dispatched ISA.\n",
      out);
}

// "s8_4x16c4__avx2_sign (M >= 8: s8_6x16c2__avx2_i16), s4_4x16c8__avx2"
std::string kernels(lowbit::isa i) {
  const lowbit::gemm_kernel_names k = lowbit::gemm_kernels(i);
  std::string s = k.s8;
  if (k.s8_wide != nullptr)
    s += std::string(" (M >= ") + std::to_string(k.s8_wide_min_rows) + ": " + k.s8_wide + ")";
  if (k.s8_u7 != nullptr) s += std::string(" (activations < 128: ") + k.s8_u7 + ")";
  return s + ", " + k.s4;
}

}  // namespace

int main(int argc, char** argv) {
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--help") == 0 || std::strcmp(argv[a], "-h") == 0) {
      print_usage(stdout);
      return 0;
    }
    std::fprintf(stderr, "list_isas: unknown argument '%s'\n", argv[a]);
    print_usage(stderr);
    return 2;
  }

  const lowbit::isa cap = lowbit::max_isa();  // reads LOWBIT_MAX_ISA (may warn once)
  const lowbit::isa runs = lowbit::best_isa();

  std::printf("lowbit %s\n", LOWBIT_VERSION_STRING);
  std::printf("cpu:   %s\n", lowbit::describe_cpu().c_str());
  std::printf("isas:\n");
  for (lowbit::isa i : lowbit::all_isas) {
    std::printf("  %-12s %-3s  %s%s\n", lowbit::to_string(i),
                lowbit::is_available(i) ? "yes" : "no", kernels(i).c_str(),
                i == runs ? "  <- runs" : "");
  }

  // Where the cap came from. Nothing here calls set_max_isa(), so it is either the
  // environment's value or the default.
  const char* env = std::getenv("LOWBIT_MAX_ISA");
  const std::optional<lowbit::isa> env_isa =
      env != nullptr ? lowbit::isa_from_string(env) : std::nullopt;
  if (env_isa && *env_isa == cap) {
    std::printf("cap:   %s (from LOWBIT_MAX_ISA)\n", lowbit::to_string(cap));
  } else if (env != nullptr && *env != '\0') {
    std::printf("cap:   %s (default, no cap; LOWBIT_MAX_ISA=\"%s\" ignored)\n",
                lowbit::to_string(cap), env);
  } else {
    std::printf("cap:   %s (default, no cap)\n", lowbit::to_string(cap));
  }
  std::printf("runs:  %s (gemm %s)\n", lowbit::to_string(runs), kernels(runs).c_str());
  return 0;
}
