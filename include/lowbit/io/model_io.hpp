// SPDX-License-Identifier: Apache-2.0
// io/model_io.hpp: quantized layers and sequential models to and from one .safetensors file.
//
// A layer saved under prefix P (e.g. "layers.2.") is:
//   P + "weight"             int8 [out x in]             (I8)   | int4 per group, packed two per
//                                                                 byte, element 2i low nibble,
//                                                                 [out x K/2] (U8), K = in padded
//                                                                 to whole groups
//   P + "weight_scale"       [out] or [out x K/group_size] (F32)
//   P + "weight_zero_point"  [out] (I32), only for affine int8 weights
//   P + "bias"               [out] (F32), when the layer has one
//   __metadata__[P + "config"]  JSON: {"kind": "quantized_linear", "mode", "dtype", "scheme",
//                               "granularity", "group_size", "in_features", "dynamic": {...},
//                               "input"/"output": {"dtype", "scale", "zero_point"} (static),
//                               "fuse_relu"}
// Float layers store P + "weight" [out x in] and P + "bias" (F32) with {"kind": "float_linear"};
// activations store only {"kind": "activation", "name": "relu"}. A sequential model writes
// its layers under "layers.<i>." and __metadata__["lowbit.model"] = {"format":
// "lowbit.sequential", "version", "layers": n}.
//
// Loading re-packs the weights for the ISA chosen at load time; the quantized values,
// scales, zero points and bias come back bit-identical, so the outputs do too. Every
// inconsistency (missing tensor, wrong dtype or shape, bad JSON) is a lowbit::error that
// names the tensor or key.
#ifndef LOWBIT_IO_MODEL_IO_HPP_
#define LOWBIT_IO_MODEL_IO_HPP_

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "lowbit/detail/core/macros.hpp"
#include "lowbit/error.hpp"
#include "lowbit/io/safetensors.hpp"
#include "lowbit/layers/linear.hpp"
#include "lowbit/layers/sequential.hpp"
#include "lowbit/version.hpp"

LOWBIT_BEGIN_NAMESPACE
namespace io {
namespace model_io_detail {

inline nlohmann::json params_json(const quant_params& p) {
  return {{"dtype", to_string(p.type)},
          {"scale", p.scales.at(0)},
          {"zero_point", p.zero_points.at(0)},
          {"quant_min", p.quant_min},
          {"quant_max", p.quant_max}};
}

inline dtype dtype_from(const std::string& s, const std::string& where) {
  for (dtype t : {dtype::int8, dtype::uint8, dtype::int4, dtype::uint4})
    if (s == to_string(t)) return t;
  detail::fail(where, ": unknown dtype '", s, "'");
}

inline quant_params params_from(const nlohmann::json& j, const std::string& where) {
  try {
    quant_params p =
        quant_params::tensor(dtype_from(j.at("dtype").get<std::string>(), where),
                             j.at("scale").get<float>(), j.at("zero_point").get<std::int32_t>());
    p.quant_min = j.at("quant_min").get<std::int32_t>();
    p.quant_max = j.at("quant_max").get<std::int32_t>();
    p.validate();
    return p;
  } catch (const nlohmann::json::exception& e) {
    detail::fail(where, ": bad quantization parameters: ", e.what());
  }
}

template <class T>
std::vector<T> read_tensor(const safetensors_file& f, const std::string& name,
                           const std::vector<std::int64_t>& shape) {
  if (!f.contains(name)) detail::fail("load: missing tensor '", name, "'");
  const auto& info = f.info(name);
  if (info.dtype != safetensors_dtype_of<T>())
    detail::fail("load: tensor '", name, "' has dtype ", info.dtype, ", expected ",
                 safetensors_dtype_of<T>());
  if (info.shape != shape) {
    std::string want, got;
    for (auto d : shape) want += std::to_string(d) + ",";
    for (auto d : info.shape) got += std::to_string(d) + ",";
    detail::fail("load: tensor '", name, "' has shape [", got, "], expected [", want, "]");
  }
  const auto bytes = f.bytes(name);
  std::vector<T> v(bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * sizeof(T));
  return v;
}

}  // namespace model_io_detail

/// Adds a quantized layer's tensors and config under `prefix`.
inline void add_layer(safetensors_writer& w, const std::string& prefix, const quantized_linear& l) {
  const packed_weights& pw = l.weights();
  const quantized_tensor q = pw.unpack();
  const std::int64_t n = pw.n(), k = pw.k();
  nlohmann::json cfg = {
      {"kind", "quantized_linear"},
      {"mode", to_string(l.mode())},
      {"dtype", to_string(q.params.type)},
      {"scheme", to_string(q.params.scheme)},
      {"granularity", to_string(q.params.granularity.type)},
      {"group_size", pw.format() == weight_format::s4 ? pw.group_size() : 0},
      {"in_features", l.in_features()},
      {"dynamic",
       {{"per_row", l.dynamic_settings().activations == dynamic_options::granularity::per_row},
        {"pytorch_compatible", l.dynamic_settings().pytorch_compatible},
        {"reduce_range", l.dynamic_settings().reduce_range}}},
      {"fuse_relu", l.fuses_relu()}};
  if (l.mode() == linear_mode::static_w8a8) {
    cfg["input"] = model_io_detail::params_json(l.input_params());
    if (l.output_params()) cfg["output"] = model_io_detail::params_json(*l.output_params());
  }
  if (pw.format() == weight_format::s8) {
    w.add(prefix + "weight", "I8", {n, k}, span<const std::uint8_t>(q.data));
    w.add(prefix + "weight_scale", {n}, q.params.scales);
    if (pw.has_zero_points()) w.add(prefix + "weight_zero_point", {n}, q.params.zero_points);
  } else {
    w.add(prefix + "weight", "U8", {n, k / 2}, span<const std::uint8_t>(q.data));
    w.add(prefix + "weight_scale", {n, pw.groups()}, q.params.scales);
  }
  if (!l.bias().empty()) w.add(prefix + "bias", {n}, l.bias());
  w.set_metadata(prefix + "config", cfg.dump());
}

/// Reads a layer written by add_layer under `prefix`, packed for `level`.
inline quantized_linear load_layer(const safetensors_file& f, const std::string& prefix,
                                   isa level = best_isa()) {
  namespace d = model_io_detail;
  const std::string key = prefix + "config";
  const auto it = f.metadata().find(key);
  if (it == f.metadata().end()) detail::fail("load: no metadata '", key, "'");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(it->second);
    if (cfg.at("kind").get<std::string>() != "quantized_linear")
      detail::fail("load: '", key, "' describes a ", cfg.at("kind").get<std::string>(),
                   ", not a quantized_linear");
    if (!f.contains(prefix + "weight")) detail::fail("load: missing tensor '", prefix, "weight'");
    const auto& winfo = f.info(prefix + "weight");
    if (winfo.shape.size() != 2) detail::fail("load: tensor '", prefix, "weight' is not 2-D");
    const std::int64_t n = winfo.shape[0];
    const std::string mode_s = cfg.at("mode").get<std::string>();
    linear_mode mode = linear_mode::dynamic_w8a8;
    bool found = false;
    for (linear_mode m : {linear_mode::dynamic_w8a8, linear_mode::static_w8a8,
                          linear_mode::weight_only, linear_mode::w4a8})
      if (mode_s == to_string(m)) mode = m, found = true;
    if (!found) detail::fail("load: '", key, "' has unknown mode '", mode_s, "'");
    quantized_tensor q;
    const dtype t = d::dtype_from(cfg.at("dtype").get<std::string>(), key);
    quant_params& p = q.params;
    p.type = t;
    p.quant_min = dtype_min(t);
    p.quant_max = dtype_max(t);
    p.scheme = cfg.at("scheme").get<std::string>() == "affine" ? scheme::affine : scheme::symmetric;
    if (t == dtype::int8) {
      const std::int64_t k = winfo.shape[1];
      q.shape = {n, k};
      const auto v = d::read_tensor<std::int8_t>(f, prefix + "weight", {n, k});
      q.data.resize(v.size());
      if (!v.empty()) std::memcpy(q.data.data(), v.data(), v.size());
      p.granularity = per_channel{0};
      p.scales = d::read_tensor<float>(f, prefix + "weight_scale", {n});
      p.zero_points = f.contains(prefix + "weight_zero_point")
                          ? d::read_tensor<std::int32_t>(f, prefix + "weight_zero_point", {n})
                          : std::vector<std::int32_t>(static_cast<std::size_t>(n), 0);
    } else if (t == dtype::int4) {
      const std::int64_t k = winfo.shape[1] * 2, gs = cfg.at("group_size").get<std::int64_t>();
      if (gs <= 0 || k % gs != 0)
        detail::fail("load: '", key, "' has group_size ", gs, " for K = ", k);
      q.shape = {n, k};
      q.data = d::read_tensor<std::uint8_t>(f, prefix + "weight", {n, k / 2});
      p.granularity = per_group{gs};
      p.scales = d::read_tensor<float>(f, prefix + "weight_scale", {n, k / gs});
      p.zero_points.assign(p.scales.size(), 0);
    } else {
      detail::fail("load: '", key, "' has weight dtype ", to_string(t), " (int8 or int4 expected)");
    }
    std::vector<float> bias;
    if (f.contains(prefix + "bias")) bias = d::read_tensor<float>(f, prefix + "bias", {n});
    dynamic_options dyn;
    const auto& dj = cfg.at("dynamic");
    dyn.activations = dj.at("per_row").get<bool>() ? dynamic_options::granularity::per_row
                                                   : dynamic_options::granularity::per_tensor;
    dyn.pytorch_compatible = dj.at("pytorch_compatible").get<bool>();
    dyn.reduce_range = dj.at("reduce_range").get<bool>();
    std::optional<quant_params> in, out;
    if (cfg.contains("input")) in = d::params_from(cfg.at("input"), key + ".input");
    if (cfg.contains("output")) out = d::params_from(cfg.at("output"), key + ".output");
    return quantized_linear::from_quantized(mode, q, std::move(bias),
                                            cfg.at("in_features").get<std::int64_t>(), dyn, in, out,
                                            cfg.at("fuse_relu").get<bool>(), level);
  } catch (const nlohmann::json::exception& e) {
    detail::fail("load: metadata '", key, "' is not a valid layer config: ", e.what());
  }
}

/// Saves one quantized layer as a .safetensors file (prefix "").
inline void save(const quantized_linear& l, const std::string& path) {
  safetensors_writer w;
  w.set_metadata("lowbit.version", LOWBIT_VERSION_STRING);
  add_layer(w, "", l);
  w.save(path);
}

inline quantized_linear load_quantized_linear(const std::string& path, isa level = best_isa()) {
  return load_layer(safetensors_file(path), "", level);
}

/// Saves a sequential model (float, quantized and activation layers) to one file.
inline void save(const sequential& model, const std::string& path) {
  safetensors_writer w;
  w.set_metadata("lowbit.model", nlohmann::json({{"format", "lowbit.sequential"},
                                                 {"version", LOWBIT_VERSION_STRING},
                                                 {"layers", model.size()}})
                                     .dump());
  for (std::size_t i = 0; i < model.layers().size(); ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    const auto& l = model.layers()[i];
    if (const auto* q = std::get_if<quantized_linear>(&l)) {
      add_layer(w, p, *q);
    } else if (const auto* fl = std::get_if<float_linear>(&l)) {
      const auto& wt = fl->weight();
      w.add(p + "weight", {wt.rows(), wt.cols()},
            span<const float>(wt.data(), static_cast<std::size_t>(wt.size())));
      if (fl->bias().size())
        w.add(p + "bias", {fl->bias().size()},
              span<const float>(fl->bias().data(), static_cast<std::size_t>(fl->bias().size())));
      w.set_metadata(p + "config", nlohmann::json({{"kind", "float_linear"}}).dump());
    } else {
      w.set_metadata(p + "config", nlohmann::json({{"kind", "activation"},
                                                   {"name", to_string(std::get<activation>(l))}})
                                       .dump());
    }
  }
  w.save(path);
}

/// Loads a model written by save(sequential, path).
inline sequential load_sequential(const std::string& path, isa level = best_isa()) {
  const safetensors_file f(path);
  const auto it = f.metadata().find("lowbit.model");
  if (it == f.metadata().end())
    detail::fail("load_sequential: '", path,
                 "' has no 'lowbit.model' metadata (not a lowbit model)");
  sequential model;
  try {
    const auto head = nlohmann::json::parse(it->second);
    if (head.at("format").get<std::string>() != "lowbit.sequential")
      detail::fail("load_sequential: '", path, "' holds format '",
                   head.at("format").get<std::string>(), "'");
    const auto n = head.at("layers").get<std::size_t>();
    if (n > 100000) detail::fail("load_sequential: '", path, "' claims ", n, " layers");
    for (std::size_t i = 0; i < n; ++i) {
      const std::string p = "layers." + std::to_string(i) + ".";
      const auto c = f.metadata().find(p + "config");
      if (c == f.metadata().end()) detail::fail("load_sequential: no metadata '", p, "config'");
      const auto cfg = nlohmann::json::parse(c->second);
      const std::string kind = cfg.at("kind").get<std::string>();
      if (kind == "quantized_linear") {
        model.add(load_layer(f, p, level));
      } else if (kind == "float_linear") {
        const auto& wi = f.info(p + "weight");
        if (wi.shape.size() != 2) detail::fail("load_sequential: '", p, "weight' is not 2-D");
        const auto wv = model_io_detail::read_tensor<float>(f, p + "weight", wi.shape);
        matrixf wm = Eigen::Map<const matrixf>(wv.data(), wi.shape[0], wi.shape[1]);
        vectorf b;
        if (f.contains(p + "bias")) {
          const auto bv = model_io_detail::read_tensor<float>(f, p + "bias", {wi.shape[0]});
          b = Eigen::Map<const vectorf>(bv.data(), wi.shape[0]);
        }
        model.add(float_linear(std::move(wm), std::move(b)));
      } else if (kind == "activation") {
        const std::string name = cfg.at("name").get<std::string>();
        bool ok = false;
        for (activation a :
             {activation::relu, activation::gelu_tanh, activation::sigmoid, activation::softmax})
          if (name == to_string(a)) model.add(a), ok = true;
        if (!ok)
          detail::fail("load_sequential: '", p, "config' names unknown activation '", name, "'");
      } else {
        detail::fail("load_sequential: '", p, "config' has unknown kind '", kind, "'");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    detail::fail("load_sequential: '", path, "': bad metadata: ", e.what());
  }
  return model;
}

}  // namespace io
LOWBIT_END_NAMESPACE

#endif  // LOWBIT_IO_MODEL_IO_HPP_
