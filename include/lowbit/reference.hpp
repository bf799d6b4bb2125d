// SPDX-License-Identifier: Apache-2.0
// reference.hpp: the naive oracle that DEFINES lowbit's results (umbrella).
//
// lowbit::reference holds scalar, obvious, slow implementations of everything with a
// numerical result: quantize / dequantize / INT4 packing (reference/quantize.hpp) and
// the integer GEMM with its epilogues (reference/gemm.hpp). Every fast path, on every
// ISA, is tested to reproduce these integers bit for bit; float outputs are compared
// with a tolerance derived from the scales, stated in each test. The per-element
// rounding rules themselves are in detail/quant/rounding.hpp.
#ifndef LOWBIT_REFERENCE_HPP_
#define LOWBIT_REFERENCE_HPP_

#include "lowbit/reference/gemm.hpp"
#include "lowbit/reference/quantize.hpp"

#endif  // LOWBIT_REFERENCE_HPP_
