// SPDX-License-Identifier: Apache-2.0
// A downstream program: links lowbit::lowbit and calls something real.
#include <cstdio>
#include <vector>

#include <lowbit/lowbit.hpp>

int main() {
  const std::vector<float> x = {-1.0f, -0.25f, 0.0f, 0.5f, 2.0f};
  const auto p = lowbit::choose_qparams(-1.0f, 2.0f, lowbit::qparams_options::affine());
  const auto q =
      lowbit::quantize(lowbit::tensor_view<const float>(lowbit::span<const float>(x)), p);
  const auto back = lowbit::dequantize(q);
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float err = back[i] > x[i] ? back[i] - x[i] : x[i] - back[i];
    if (err > p.scales[0] / 2) return 1;
  }
  std::printf("consumer ok: lowbit %s, %s\n", LOWBIT_VERSION_STRING,
              lowbit::to_string(lowbit::best_isa()));
  return 0;
}
