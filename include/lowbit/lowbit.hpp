// SPDX-License-Identifier: Apache-2.0
// lowbit.hpp: the umbrella header; includes every public header (never detail/ or arch/).
#ifndef LOWBIT_LOWBIT_HPP_
#define LOWBIT_LOWBIT_HPP_

#include "lowbit/activations.hpp"
#include "lowbit/calibrate.hpp"
#include "lowbit/choose_qparams.hpp"
#include "lowbit/config.hpp"
#include "lowbit/eigen.hpp"
#include "lowbit/error.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/io/model_io.hpp"
#include "lowbit/io/npy.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/linear.hpp"
#include "lowbit/pack.hpp"
#include "lowbit/packed_weights.hpp"
#include "lowbit/qat.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/quantize.hpp"
#include "lowbit/reference.hpp"
#include "lowbit/sequential.hpp"
#include "lowbit/version.hpp"
#include "lowbit/view.hpp"

#endif  // LOWBIT_LOWBIT_HPP_
