// SPDX-License-Identifier: Apache-2.0
// Saving and loading quantized layers and models: bit-identical round trips and the
// errors a broken or foreign file gives.
#include <catch2/catch.hpp>

#include "support/random.hpp"

#include <filesystem>
#include <random>

#include "lowbit/io/model_io.hpp"

using Catch::Contains;
using lowbit::matrixf;
using lowbit::quantized_linear;

namespace {

using lowbit_test::randn;

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("lowbit_model_io_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

bool same_layer(const quantized_linear& a, const quantized_linear& b) {
  const auto qa = a.weights().unpack(), qb = b.weights().unpack();
  return a.mode() == b.mode() && a.in_features() == b.in_features() && qa.data == qb.data &&
         qa.params.scales == qb.params.scales && qa.params.zero_points == qb.params.zero_points &&
         a.bias() == b.bias() && a.fuses_relu() == b.fuses_relu();
}

}  // namespace

TEST_CASE("every layer mode saves and loads bit-identically", "[io][model_io]") {
  const matrixf w = randn(23, 100, 0.05f, 1), x = randn(3, 100, 1.0f, 2);
  const lowbit::vectorf b = randn(23, 1, 0.1f, 3).col(0);
  const auto bias = lowbit::view(b);
  const auto in =
      lowbit::choose_qparams(x.minCoeff(), x.maxCoeff(), lowbit::qparams_options::affine());
  const auto out = lowbit::choose_qparams(-3.0f, 3.0f, lowbit::qparams_options::affine());
  lowbit::dynamic_options pt;
  pt.pytorch_compatible = true;
  pt.reduce_range = true;
  const std::vector<quantized_linear> layers = {
      quantized_linear::dynamic(lowbit::view(w), bias),
      quantized_linear::dynamic(lowbit::view(w), {}, pt, lowbit::weight_spec::int8().affine()),
      quantized_linear::static_quant(lowbit::view(w), bias, in, out, true),
      quantized_linear::static_quant(lowbit::view(w), bias, in),
      quantized_linear::weight_only(lowbit::view(w), bias, lowbit::weight_spec::int4({32})),
      quantized_linear::weight_only(lowbit::view(w), bias, lowbit::weight_spec::int8()),
      quantized_linear::w4a8(lowbit::view(w), bias, lowbit::weight_spec::int4({64}))};
  const std::string path = temp_path("layer.safetensors");
  for (const auto& l : layers) {
    INFO(l.describe());
    lowbit::io::save(l, path);
    const auto back = lowbit::io::load_quantized_linear(path);
    CHECK(same_layer(l, back));
    CHECK(back.memory_bytes() == l.memory_bytes());
    CHECK(back(x) == l(x));  // same integers, same floats
  }
  std::filesystem::remove(path);
}

TEST_CASE("a sequential model round-trips, float and quantized", "[io][model_io]") {
  lowbit::sequential m;
  m.linear(randn(16, 40, 0.2f, 1), randn(16, 1, 0.1f, 2).col(0)).add(lowbit::activation::relu);
  m.linear(randn(8, 16, 0.2f, 3)).add(lowbit::activation::sigmoid);
  const matrixf x = randn(5, 40, 1.0f, 4);
  std::vector<matrixf> calib = {randn(16, 40, 1.0f, 5)};
  const std::string path = temp_path("model.safetensors");
  for (const auto& model :
       {m, m.quantize(lowbit::quantization_config::static_int8(), calib),
        m.quantize(lowbit::quantization_config::w4a8(lowbit::weight_spec::int4({32})))}) {
    INFO(model.describe());
    lowbit::io::save(model, path);
    const auto back = lowbit::io::load_sequential(path);
    CHECK(back.describe() == model.describe());
    CHECK(back(x) == model(x));
  }
  std::filesystem::remove(path);
}

TEST_CASE("broken or foreign files give errors naming the tensor or key", "[io][model_io]") {
  const matrixf w = randn(8, 64, 0.05f, 1);
  const auto l = quantized_linear::w4a8(lowbit::view(w), {}, lowbit::weight_spec::int4({32}));
  const std::string path = temp_path("broken.safetensors");
  auto write = [&](auto edit) {
    lowbit::io::safetensors_writer wr;
    edit(wr);
    wr.save(path);
  };
  // no config metadata
  write([&](lowbit::io::safetensors_writer& wr) {
    wr.add("weight", {8, 32}, std::vector<std::uint8_t>(256));
  });
  CHECK_THROWS_WITH(lowbit::io::load_quantized_linear(path), Contains("no metadata 'config'"));
  // config but wrong scale shape
  write([&](lowbit::io::safetensors_writer& wr) {
    lowbit::io::add_layer(wr, "a.", l);
    wr.set_metadata("config",
                    R"({"kind":"quantized_linear","mode":"w4a8","dtype":"int4","scheme":"symmetric",
      "granularity":"per_group","group_size":32,"in_features":64,"fuse_relu":false,
      "dynamic":{"per_row":true,"pytorch_compatible":false,"reduce_range":false}})");
    wr.add("weight", {8, 32}, std::vector<std::uint8_t>(256));
    wr.add("weight_scale", {8, 3}, std::vector<float>(24, 1.0f));
  });
  CHECK_THROWS_WITH(lowbit::io::load_quantized_linear(path),
                    Contains("tensor 'weight_scale' has shape [8,3,], expected [8,2,]"));
  CHECK_NOTHROW(lowbit::io::load_layer(lowbit::io::safetensors_file(path), "a."));
  // malformed JSON config
  write([&](lowbit::io::safetensors_writer& wr) {
    wr.add("weight", {8, 32}, std::vector<std::uint8_t>(256));
    wr.set_metadata("config", "{not json");
  });
  CHECK_THROWS_WITH(lowbit::io::load_quantized_linear(path),
                    Contains("is not a valid layer config"));
  // a plain safetensors file is not a lowbit model
  write([&](lowbit::io::safetensors_writer& wr) { wr.add("x", {1}, std::vector<float>{1.0f}); });
  CHECK_THROWS_WITH(lowbit::io::load_sequential(path), Contains("has no 'lowbit.model' metadata"));
  std::filesystem::remove(path);
}
