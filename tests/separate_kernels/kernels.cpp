// SPDX-License-Identifier: Apache-2.0
// The one TU of this program that compiles lowbit's kernel tables
// (LOWBIT_SEPARATE_KERNELS; see lowbit/compiled_kernels.hpp).
#include <lowbit/compiled_kernels.hpp>
