// SPDX-License-Identifier: Apache-2.0
// lowbit.hpp: the umbrella header of the core (CMake target lowbit::lowbit): every public
// header except io/, which has its own umbrella, lowbit/io.hpp (target lowbit::io, which
// adds nlohmann-json). Never detail/ or arch/.
#ifndef LOWBIT_LOWBIT_HPP_
#define LOWBIT_LOWBIT_HPP_

#include "lowbit/calibrate.hpp"
#include "lowbit/choose_qparams.hpp"
#include "lowbit/config.hpp"
#include "lowbit/eigen.hpp"
#include "lowbit/error.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/gemm_eigen.hpp"
#include "lowbit/gemm_types.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/layers/activations.hpp"
#include "lowbit/layers/linear.hpp"
#include "lowbit/layers/qat.hpp"
#include "lowbit/layers/sequential.hpp"
#include "lowbit/pack.hpp"
#include "lowbit/packed_weights.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/quantize.hpp"
#include "lowbit/quantized_tensor.hpp"
#include "lowbit/reference.hpp"
#include "lowbit/requantize.hpp"
#include "lowbit/version.hpp"
#include "lowbit/view.hpp"

#endif  // LOWBIT_LOWBIT_HPP_
