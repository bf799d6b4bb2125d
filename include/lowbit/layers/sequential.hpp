// SPDX-License-Identifier: Apache-2.0
// layers/sequential.hpp: a small layer container, so an MLP is a few lines and switches
// between float and any quantized mode with one call.
//
//   lowbit::sequential mlp;
//   mlp.linear(w1, b1).add(lowbit::activation::relu).linear(w2,
//   b2).add(lowbit::activation::sigmoid); lowbit::matrixf y = mlp(x); // fp32 auto q =
//   mlp.quantize(lowbit::quantization_config::dynamic_int8());   // W8A8 dynamic auto s =
//   mlp.quantize(lowbit::quantization_config::static_int8(lowbit::calibrator::histogram),
//                         calibration_batches);                           // W8A8 static
//
// quantize() returns a NEW model whose linear layers are quantized_linear (the float
// weights are not kept, so memory_bytes() is the quantized model's size); activations
// are copied. Static quantization follows PyTorch eager mode: the float model runs on
// the calibration batches while an observer watches the input of every linear layer
// and its output (after a following ReLU, which is then fused into the layer, as
// LinearReLU); activations are uint8 affine per tensor. With
// requantize_between_layers (default), consecutive static layers pass uint8 tensors
// (forward_quantized), a layer's input parameters being its predecessor's output
// parameters; other activations (sigmoid, GELU, softmax) run in float between a
// dequantize and the next layer's quantize, where PyTorch would use its quantized
// kernels.
#ifndef LOWBIT_LAYERS_SEQUENTIAL_HPP_
#define LOWBIT_LAYERS_SEQUENTIAL_HPP_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "lowbit/calibrate.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/eigen.hpp"
#include "lowbit/error.hpp"
#include "lowbit/layers/activations.hpp"
#include "lowbit/layers/linear.hpp"

LOWBIT_BEGIN_NAMESPACE

/// The observers of calibrate.hpp, by name, for static quantization.
enum class calibrator : std::uint8_t { minmax, moving_average, percentile, histogram, entropy };

constexpr const char* to_string(calibrator c) noexcept {
  switch (c) {
    case calibrator::minmax:
      return "minmax";
    case calibrator::moving_average:
      return "moving_average";
    case calibrator::percentile:
      return "percentile";
    case calibrator::histogram:
      return "histogram";
    case calibrator::entropy:
      return "entropy";
  }
  return "?";
}

/// One object describing how to quantize every linear layer of a model.
struct quantization_config {
  linear_mode mode = linear_mode::dynamic_w8a8;
  dynamic_options dynamic{};
  weight_spec weights = weight_spec::int8();
  calibrator calib = calibrator::minmax;  ///< static only
  double percentile = 99.99;              ///< calibrator::percentile
  float averaging_constant = 0.01f;       ///< calibrator::moving_average
  bool requantize_between_layers = true;  ///< static only
  lowbit::isa level = best_isa();

  static quantization_config dynamic_int8(dynamic_options d = {},
                                          weight_spec w = weight_spec::int8()) {
    quantization_config c;
    c.dynamic = d;
    c.weights = w;
    return c;
  }
  static quantization_config static_int8(calibrator k = calibrator::minmax) {
    quantization_config c;
    c.mode = linear_mode::static_w8a8;
    c.calib = k;
    return c;
  }
  static quantization_config weight_only(weight_spec w = weight_spec::int4()) {
    quantization_config c;
    c.mode = linear_mode::weight_only;
    c.weights = w;
    return c;
  }
  static quantization_config w4a8(weight_spec w = weight_spec::int4()) {
    quantization_config c;
    c.mode = linear_mode::w4a8;
    c.weights = w;
    return c;
  }
  std::string describe() const {
    std::string s = to_string(mode);
    if (mode == linear_mode::static_w8a8) s += std::string(" (") + to_string(calib) + ")";
    if (mode == linear_mode::dynamic_w8a8)
      s += dynamic.pytorch_compatible                                     ? " (pytorch_compatible)"
           : dynamic.activations == dynamic_options::granularity::per_row ? " (per-row)"
                                                                          : " (per-tensor)";
    return s;
  }
};

namespace detail {

/// Any observer of calibrate.hpp behind one interface (per tensor).
class any_observer {
 public:
  any_observer(const quantization_config& c) {  // NOLINT
    switch (c.calib) {
      case calibrator::minmax:
        obs_ = minmax_observer();
        break;
      case calibrator::moving_average:
        obs_ = moving_average_minmax_observer(c.averaging_constant);
        break;
      case calibrator::percentile:
        obs_ = percentile_observer(c.percentile);
        break;
      case calibrator::histogram:
        obs_ = histogram_observer();
        break;
      case calibrator::entropy:
        obs_ = entropy_observer();
        break;
    }
  }
  void observe(const matrixf& x) {
    std::visit([&](auto& o) { o.observe(view(x)); }, obs_);
  }
  quant_params compute() const {
    return std::visit(
        [](const auto& o) { return o.compute(qparams_options::affine(dtype::uint8)); }, obs_);
  }

 private:
  std::variant<minmax_observer, moving_average_minmax_observer, percentile_observer,
               histogram_observer, entropy_observer>
      obs_;
};

}  // namespace detail

class sequential {
 public:
  using layer = std::variant<float_linear, quantized_linear, activation>;

  /// Appends a float linear layer, weights [out x in] like torch.nn.Linear.
  sequential& linear(matrixf w, vectorf b = vectorf()) {
    return add(float_linear(std::move(w), std::move(b)));
  }
  sequential& add(float_linear l) { return push(std::move(l)); }
  sequential& add(quantized_linear l) { return push(std::move(l)); }
  sequential& add(activation a) {
    layers_.emplace_back(a);
    return *this;
  }

  const std::vector<layer>& layers() const noexcept { return layers_; }
  std::size_t size() const noexcept { return layers_.size(); }
  std::int64_t in_features() const {
    for (const auto& l : layers_) {
      if (auto* f = std::get_if<float_linear>(&l)) return f->in_features();
      if (auto* q = std::get_if<quantized_linear>(&l)) return q->in_features();
    }
    return 0;
  }

  matrixf forward(const Eigen::Ref<const matrixf>& x, const gemm_context& ctx = {}) const {
    if (x.cols() != in_features())
      detail::fail("sequential::forward: input has ", x.cols(), " features, model expects ",
                   in_features());
    matrixf cur = x;
    // Quantized activations flowing between static layers (requantize_between_layers).
    std::vector<std::uint8_t> q;
    const quant_params* qp = nullptr;
    const detail::kernel_table* qt = nullptr;  // the table of the layer that produced q
    auto to_float = [&]() {
      if (!qp) return;
      matrixf f(cur.rows(), cur.cols());  // cur carries the shape of q
      dequantize_bytes(*qt, q, *qp, f);
      cur = std::move(f);
      qp = nullptr;
    };
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      const layer& l = layers_[i];
      if (const auto* f = std::get_if<float_linear>(&l)) {
        to_float();
        cur = (*f)(cur, ctx);
      } else if (const auto* a = std::get_if<activation>(&l)) {
        to_float();
        apply(*a, cur);
      } else {
        const auto& ql = std::get<quantized_linear>(l);
        if (ql.mode() == linear_mode::static_w8a8 && ql.output_params()) {
          const std::int64_t m = cur.rows();
          std::vector<std::uint8_t> in;
          if (qp && same_params(*qp, ql.input_params())) {
            in = std::move(q);
          } else {
            to_float();
            in.resize(static_cast<std::size_t>(m * ql.in_features()));
            quantize_bytes(ql.weights().table(), cur, ql.input_params(), in);
          }
          q.assign(static_cast<std::size_t>(m * ql.out_features()), 0);
          ql.forward_quantized(in.data(), m, ql.in_features(), q.data(), ql.out_features(), ctx);
          qp = &*ql.output_params();
          qt = &ql.weights().table();
          cur.resize(m, ql.out_features());  // shape carrier for to_float()
        } else {
          to_float();
          cur = ql(cur, ctx);
        }
      }
    }
    to_float();
    return cur;
  }
  matrixf operator()(const Eigen::Ref<const matrixf>& x, const gemm_context& ctx = {}) const {
    return forward(x, ctx);
  }

  /// A quantized copy (see the file comment). `calibration` batches are needed for
  /// static_w8a8 and ignored otherwise. Layers already quantized are kept as they are.
  sequential quantize(const quantization_config& cfg,
                      const std::vector<matrixf>& calibration = {}) const {
    sequential out;
    if (cfg.mode == linear_mode::static_w8a8) return quantize_static(cfg, calibration);
    for (const auto& l : layers_) {
      if (const auto* f = std::get_if<float_linear>(&l)) {
        const span<const float> b = f->bias().size() ? view(f->bias()) : span<const float>();
        switch (cfg.mode) {
          case linear_mode::dynamic_w8a8:
            out.add(quantized_linear::dynamic(view(f->weight()), b, cfg.dynamic, cfg.weights,
                                              cfg.level));
            break;
          case linear_mode::weight_only:
            out.add(quantized_linear::weight_only(view(f->weight()), b, cfg.weights, cfg.level));
            break;
          case linear_mode::w4a8:
            out.add(quantized_linear::w4a8(view(f->weight()), b, cfg.weights, cfg.level));
            break;
          case linear_mode::static_w8a8:
            break;
        }
      } else {
        out.layers_.push_back(l);
      }
    }
    return out;
  }

  std::size_t memory_bytes() const {
    std::size_t n = 0;
    for (const auto& l : layers_) {
      if (const auto* f = std::get_if<float_linear>(&l)) n += f->memory_bytes();
      if (const auto* q = std::get_if<quantized_linear>(&l)) n += q->memory_bytes();
    }
    return n;
  }

  std::string describe() const {
    std::string s;
    for (const auto& l : layers_) {
      if (!s.empty()) s += " -> ";
      if (const auto* f = std::get_if<float_linear>(&l)) s += f->describe();
      if (const auto* q = std::get_if<quantized_linear>(&l)) s += q->describe();
      if (const auto* a = std::get_if<activation>(&l)) s += to_string(*a);
    }
    return s;
  }

 private:
  template <class L>
  sequential& push(L l) {
    const std::int64_t prev = out_features_so_far();
    if (prev != 0 && prev != l.in_features())
      detail::fail("sequential: layer ", layers_.size(), " expects ", l.in_features(),
                   " inputs but the previous layer produces ", prev);
    layers_.emplace_back(std::move(l));
    return *this;
  }
  std::int64_t out_features_so_far() const {
    for (auto it = layers_.rbegin(); it != layers_.rend(); ++it) {
      if (auto* f = std::get_if<float_linear>(&*it)) return f->out_features();
      if (auto* q = std::get_if<quantized_linear>(&*it)) return q->out_features();
    }
    return 0;
  }

  static bool same_params(const quant_params& a, const quant_params& b) {
    return a.type == b.type && a.scales == b.scales && a.zero_points == b.zero_points &&
           a.quant_min == b.quant_min && a.quant_max == b.quant_max;
  }

  /// Quantizes with the consuming layer's kernel table (not best_isa() now).
  static void quantize_bytes(const detail::kernel_table& kt, const matrixf& x,
                             const quant_params& p, std::vector<std::uint8_t>& out) {
    detail::quantize_checked(kt, view(x), p, out.data(), out.size(), {});
  }
  /// Dequantizes with the producing layer's kernel table.
  static void dequantize_bytes(const detail::kernel_table& kt, const std::vector<std::uint8_t>& q,
                               const quant_params& p, matrixf& f) {
    const tensor_view<float> v(f.data(), {f.rows(), f.cols()});
    detail::dequantize_checked(kt, q.data(), q.size(), p, v);
  }

  sequential quantize_static(const quantization_config& cfg,
                             const std::vector<matrixf>& calibration) const {
    if (calibration.empty())
      detail::fail("sequential::quantize: static quantization needs calibration batches");
    // Observers: input of every float linear, and its output (after a fused ReLU).
    const std::size_t n = layers_.size();
    std::vector<std::optional<detail::any_observer>> in_obs(n), out_obs(n);
    for (std::size_t i = 0; i < n; ++i)
      if (std::holds_alternative<float_linear>(layers_[i])) {
        in_obs[i].emplace(cfg);
        out_obs[i].emplace(cfg);
      }
    for (const matrixf& batch : calibration) {
      matrixf cur = batch;
      for (std::size_t i = 0; i < n; ++i) {
        const layer& l = layers_[i];
        if (const auto* f = std::get_if<float_linear>(&l)) {
          in_obs[i]->observe(cur);
          cur = (*f)(cur);
          if (fused_relu(i)) apply(activation::relu, cur);
          out_obs[i]->observe(cur);
          if (fused_relu(i)) ++i;
        } else if (const auto* a = std::get_if<activation>(&l)) {
          apply(*a, cur);
        } else {
          cur = std::get<quantized_linear>(l)(cur);
        }
      }
    }
    sequential out;
    std::optional<quant_params> prev_out;  // output params of the previous static layer
    for (std::size_t i = 0; i < n; ++i) {
      const layer& l = layers_[i];
      if (const auto* f = std::get_if<float_linear>(&l)) {
        const bool relu = fused_relu(i);
        const quant_params in = prev_out ? *prev_out : in_obs[i]->compute();
        std::optional<quant_params> outp;
        if (cfg.requantize_between_layers) outp = out_obs[i]->compute();
        const span<const float> b = f->bias().size() ? view(f->bias()) : span<const float>();
        out.add(quantized_linear::static_quant(view(f->weight()), b, in, outp, relu && outp,
                                               cfg.weights, cfg.level));
        if (relu) {
          if (!outp) out.add(activation::relu);
          ++i;
        }
        prev_out = outp;
      } else {
        out.layers_.push_back(l);
        prev_out.reset();  // a float op in between: the next layer quantizes its own input
      }
    }
    return out;
  }

  bool fused_relu(std::size_t i) const {
    return i + 1 < layers_.size() && std::holds_alternative<activation>(layers_[i + 1]) &&
           std::get<activation>(layers_[i + 1]) == activation::relu;
  }

  std::vector<layer> layers_;
};

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_LAYERS_SEQUENTIAL_HPP_
