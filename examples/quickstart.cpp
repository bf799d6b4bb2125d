// SPDX-License-Identifier: Apache-2.0
// quickstart.cpp: the README's usage snippet, compiled and run by the test suite.
// Quantizes a [512 x 768] linear layer three ways and prints size, error and ISA.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include <lowbit/io.hpp>
#include <lowbit/lowbit.hpp>

int main(int argc, char** argv) {
  if (argc > 1 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::puts(
        "usage: quickstart\n  Builds a [512 x 768] linear layer in fp32, dynamic INT8, INT4 "
        "(W4A8)\n"
        "  and static INT8 (histogram calibration), and prints bytes and errors.");
    return 0;
  }
  std::srand(42);
  lowbit::matrixf w = lowbit::matrixf::Random(512, 768) * 0.05f;  // [out x in], like nn.Linear
  lowbit::vectorf b = lowbit::vectorf::Random(512) * 0.1f;
  lowbit::matrixf x = lowbit::matrixf::Random(8, 768);  // [batch x in]

  // --- the README snippet -----------------------------------------------------------
  auto fc8 = lowbit::quantized_linear::dynamic(lowbit::view(w), lowbit::view(b));  // W8A8
  auto fc4 =
      lowbit::quantized_linear::from_float(w, b, lowbit::weight_spec::int4(lowbit::per_group{128}));
  lowbit::matrixf y8 = fc8(x), y4 = fc4(x);  // f32 in, f32 out
  std::printf("int8 layer: %zu bytes, runs on %s\n", fc8.memory_bytes(),
              lowbit::to_string(fc8.isa()));

  lowbit::sequential mlp;  // or a whole model:
  mlp.linear(w, b).add(lowbit::activation::relu);
  auto q = mlp.quantize(lowbit::quantization_config::static_int8(lowbit::calibrator::histogram),
                        {x});                          // calibration batches
  lowbit::io::save(q, "quickstart_int8.safetensors");  // and load_sequential()
  // ----------------------------------------------------------------------------------

  const lowbit::matrixf ref = lowbit::float_linear(w, b)(x);
  const lowbit::matrixf ref_relu = ref.cwiseMax(0.0f);
  const lowbit::matrixf yq = lowbit::io::load_sequential("quickstart_int8.safetensors")(x);
  std::remove("quickstart_int8.safetensors");
  auto row = [&](const char* name, std::size_t bytes, const lowbit::matrixf& y,
                 const lowbit::matrixf& r) {
    std::printf("| %-30s | %9zu | %10.4f |\n", name, bytes, (y - r).cwiseAbs().maxCoeff());
  };
  std::printf("\nlowbit %s on %s\n\n", LOWBIT_VERSION_STRING, lowbit::describe_cpu().c_str());
  std::printf("| %-30s | %9s | %10s |\n|%s|%s|%s|\n", "layer [768 -> 512], batch 8", "bytes",
              "max |err|", "--------------------------------", "-----------", "------------");
  row("fp32 (Eigen)", static_cast<std::size_t>(w.size() + b.size()) * 4, ref, ref);
  row("int8 dynamic (W8A8)", fc8.memory_bytes(), y8, ref);
  row("int4 per-group 128 (W4A8)", fc4.memory_bytes(), y4, ref);
  row("int8 static + ReLU, reloaded", q.memory_bytes(), yq, ref_relu);
  return (y8 - ref).cwiseAbs().maxCoeff() < 0.1f ? 0 : 1;
}
