// SPDX-License-Identifier: Apache-2.0
// io.hpp: the umbrella header of lowbit's file formats (CMake target lowbit::io, which
// carries nlohmann-json for the safetensors header): .npy, .safetensors, and quantized
// layers and models saved to / loaded from one .safetensors file.
#ifndef LOWBIT_IO_HPP_
#define LOWBIT_IO_HPP_

#include "lowbit/io/model_io.hpp"
#include "lowbit/io/npy.hpp"
#include "lowbit/io/safetensors.hpp"

#endif  // LOWBIT_IO_HPP_
