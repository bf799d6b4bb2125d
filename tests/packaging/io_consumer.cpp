// SPDX-License-Identifier: Apache-2.0
// A downstream program of lowbit::io: saves a quantized layer to .safetensors and loads it
// back bit-identical.
#include <cstdio>
#include <cstring>
#include <string>

#include <lowbit/io.hpp>
#include <lowbit/lowbit.hpp>

int main() {
  const lowbit::matrixf w = lowbit::matrixf::Random(24, 64);
  const lowbit::matrixf x = lowbit::matrixf::Random(3, 64);
  const auto layer = lowbit::quantized_linear::dynamic(lowbit::view(w));
  const std::string path = "io_consumer_layer.safetensors";
  lowbit::io::save(layer, path);
  const auto back = lowbit::io::load_quantized_linear(path);
  std::remove(path.c_str());
  const lowbit::matrixf y0 = layer(x), y1 = back(x);
  if (std::memcmp(y0.data(), y1.data(), sizeof(float) * static_cast<std::size_t>(y0.size())) != 0)
    return 1;
  std::printf("io consumer ok: %s\n", back.describe().c_str());
  return 0;
}
