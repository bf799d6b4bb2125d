// SPDX-License-Identifier: Apache-2.0
// layers/linear.hpp: quantized linear layers built from float weights, and the float baseline.
//
//   auto fc = lowbit::quantized_linear::dynamic(w, b);   // w [out x in], like nn.Linear
//   lowbit::matrixf y = fc(x);                            // x [batch x in], f32 in and out
//
// A quantized_linear quantizes its weights ONCE, packs them for the ISA chosen at
// construction (isa()), and is immutable afterwards: forward() is const and safe to
// call from several threads at once (scratch buffers are per call).
//
// Modes, and what each matches in PyTorch / ONNX terms
// ----------------------------------------------------
// dynamic_w8a8  int8 weights (per channel by default), activations quantized on every
//               call, f32 out. Activations per row ("per token": int8 symmetric,
//               amax / 127, as torchao's int8 dynamic / bitsandbytes LLM.int8 without
//               outliers) or per tensor (uint8 affine, the observer rule). With
//               dynamic_options::pytorch_compatible the activation parameters follow
//               torch.ao.quantization.quantize_dynamic exactly (FBGEMM's
//               ChooseQuantizationParams on the tensor's min/max, uint8 [0, 255] or
//               [0, 127] with reduce_range); use weight_spec::int8(per_tensor{}) to match
//               default_dynamic_qconfig, per_channel{0} for per_channel_dynamic_qconfig.
//               ONNX: DynamicQuantizeLinear + MatMulInteger.
// static_w8a8   activation parameters calibrated beforehand (calibrate.hpp observers),
//               as PyTorch eager static quantization (QuantStub, per-channel symmetric
//               qint8 weights, per-tensor affine quint8 activations): int8/uint8 in and,
//               with output parameters, int8/uint8 out requantized for the next layer
//               (forward_quantized), or f32 out. ONNX: QLinearMatMul / QDQ.
// weight_only   int8 per channel or int4 per group weights, f32 activations and math:
//               the decode case of bitsandbytes / llama.cpp (weights widened in
//               registers, detail/gemm/weight_only.hpp). ONNX: MatMulNBits (accuracy_level 0).
// w4a8          int4 per-group weights x int8 per-row dynamic activations, f32 out
//               (llama.cpp Q4_0 x Q8_0, ONNX MatMulNBits accuracy_level 4).
//
// Bad input (shapes, non-finite activations or weights, invalid parameters) throws
// lowbit::error naming the problem; nothing is written on error.
#ifndef LOWBIT_LAYERS_LINEAR_HPP_
#define LOWBIT_LAYERS_LINEAR_HPP_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "lowbit/calibrate.hpp"
#include "lowbit/choose_qparams.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/gemm/driver.hpp"
#include "lowbit/detail/gemm/weight_only.hpp"
#include "lowbit/detail/kernel_table.hpp"
#include "lowbit/detail/quant/range_scan.hpp"
#include "lowbit/eigen.hpp"
#include "lowbit/error.hpp"
#include "lowbit/gemm.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/layers/fp32_gemm.hpp"
#include "lowbit/packed_weights.hpp"
#include "lowbit/quantize.hpp"

LOWBIT_BEGIN_NAMESPACE

enum class linear_mode : std::uint8_t { dynamic_w8a8, static_w8a8, weight_only, w4a8 };

constexpr const char* to_string(linear_mode m) noexcept {
  switch (m) {
    case linear_mode::dynamic_w8a8:
      return "dynamic_w8a8";
    case linear_mode::static_w8a8:
      return "static_w8a8";
    case linear_mode::weight_only:
      return "weight_only";
    case linear_mode::w4a8:
      return "w4a8";
  }
  return "?";
}

/// How weights are quantized.
struct weight_spec {
  enum class clipping : std::uint8_t { minmax, mse };
  lowbit::dtype type = lowbit::dtype::int8;
  lowbit::granularity granularity = per_channel{0};
  lowbit::scheme scheme = lowbit::scheme::symmetric;
  symmetric_convention convention = symmetric_convention::pytorch;
  clipping clip = clipping::minmax;

  /// int8, symmetric, per channel (default) or per tensor.
  static weight_spec int8(lowbit::granularity g = per_channel{0}) {
    weight_spec s;
    s.granularity = g;
    return s;
  }
  /// int4, symmetric, per group (group_size a multiple of 32 dividing in_features).
  static weight_spec int4(per_group g = per_group{128}) {
    weight_spec s;
    s.type = lowbit::dtype::int4;
    s.granularity = g;
    return s;
  }
  weight_spec& with_mse() {
    clip = clipping::mse;
    return *this;
  }
  weight_spec& affine() {
    scheme = lowbit::scheme::affine;
    return *this;
  }

  /// in_features rounded up to a whole number of groups (per_group), else unchanged.
  std::int64_t padded_k(std::int64_t k) const noexcept {
    if (!granularity.is_per_group() || granularity.group_size <= 0) return k;
    const std::int64_t g = granularity.group_size;
    return (k + g - 1) / g * g;
  }

  /// Quantizes float weights [out x in] by this spec. Per group, when the group size
  /// does not divide `in`, the weights are zero-padded to padded_k(in) columns first:
  /// the last group is partly zeros (which change neither its max nor the products).
  quantized_tensor quantize(tensor_view<const float> w) const {
    if (w.rank() != 2)
      detail::fail("weight_spec: weights must be 2-D [out x in], got rank ", w.rank());
    const std::int64_t kp = padded_k(w.shape[1]);
    if (kp != w.shape[1]) {
      std::vector<float> padded(static_cast<std::size_t>(w.shape[0] * kp), 0.0f);
      for (std::int64_t r = 0; r < w.shape[0]; ++r)
        for (std::int64_t c = 0; c < w.shape[1]; ++c)
          padded[static_cast<std::size_t>(r * kp + c)] =
              w.data[r * w.strides[0] + c * w.strides[1]];
      return quantize(tensor_view<const float>(padded.data(), {w.shape[0], kp}));
    }
    qparams_options o;
    o.type = type;
    o.scheme = scheme;
    o.convention = convention;
    quant_params p;
    if (clip == clipping::mse) {
      p = choose_qparams_mse(w, o, granularity);
    } else if (granularity.is_per_group()) {  // plain min-max per group
      const std::int64_t g = granularity.group_size;
      if (g <= 0 || w.shape[1] % g != 0)
        detail::fail("weight_spec: group_size ", g, " does not divide K = ", w.shape[1]);
      const std::int64_t groups = w.shape[1] / g;
      std::vector<float> mn(static_cast<std::size_t>(w.shape[0] * groups)), mx(mn.size());
      for (std::int64_t r = 0; r < w.shape[0]; ++r)
        for (std::int64_t q = 0; q < groups; ++q) {
          float lo = 0.0f, hi = 0.0f;
          for (std::int64_t c = q * g; c < (q + 1) * g; ++c) {
            const float v = w.data[r * w.strides[0] + c * w.strides[1]];
            if (!std::isfinite(v))
              detail::fail("weight_spec: non-finite weight ", v, " at [", r, ", ", c, "]");
            lo = std::min(lo, v);
            hi = std::max(hi, v);
          }
          mn[static_cast<std::size_t>(r * groups + q)] = lo;
          mx[static_cast<std::size_t>(r * groups + q)] = hi;
        }
      p = choose_qparams(span<const float>(mn), span<const float>(mx), o, granularity);
    } else {
      minmax_observer obs(granularity);
      obs.observe(w);
      p = obs.compute(o);
    }
    return lowbit::quantize(w, p);
  }
};

/// Activation quantization of the dynamic modes.
struct dynamic_options {
  enum class granularity : std::uint8_t { per_row, per_tensor };
  granularity activations = granularity::per_row;
  bool pytorch_compatible = false;  ///< per-tensor uint8 with quantize_dynamic's rule
  bool reduce_range = false;        ///< pytorch_compatible only: uint8 [0, 127]
};

namespace detail {

inline void check_linear_weights(tensor_view<const float> w, span<const float> bias) {
  if (w.rank() != 2) fail("quantized_linear: weights must be 2-D [out x in], got rank ", w.rank());
  if (w.shape[0] <= 0 || w.shape[1] <= 0)
    fail("quantized_linear: empty weights [", w.shape[0], " x ", w.shape[1], "]");
  if (!bias.empty() && static_cast<std::int64_t>(bias.size()) != w.shape[0])
    fail("quantized_linear: bias has ", bias.size(), " entries for out_features = ", w.shape[0]);
  for (std::size_t i = 0; i < bias.size(); ++i)
    if (!std::isfinite(bias[i]))
      fail("quantized_linear: bias[", i, "] = ", bias[i], " is not finite");
}

/// Per-thread buffers of the layers' forward calls beyond the activations (which
/// live in activation_scratch): grow-only, so a thread's calls stop allocating once
/// they have seen their largest size.
struct layer_scratch {
  std::vector<float> scales;        ///< per-row activation scales
  std::vector<float> floats;        ///< weight-only: zero-padded activations
  std::vector<std::uint8_t> bytes;  ///< static f32 out: the requantized outputs
  static layer_scratch& of_this_thread() {
    thread_local layer_scratch s;
    return s;
  }
  template <class T>
  static T* grow(std::vector<T>& v, std::int64_t n) {
    if (static_cast<std::int64_t>(v.size()) < n) v.resize(static_cast<std::size_t>(n));
    return v.data();
  }
};

/// Throws "<who>: non-finite value v at [r, c]".
[[noreturn]] inline void fail_nonfinite(const char* who, float v, std::int64_t r, std::int64_t c) {
  fail(who, ": non-finite value ", v, " at [", r, ", ", c, "]");
}

}  // namespace detail

class quantized_linear {
 public:
  quantized_linear() = default;

  /// dynamic_w8a8 (see the file comment).
  static quantized_linear dynamic(tensor_view<const float> w, span<const float> bias = {},
                                  dynamic_options o = {}, weight_spec ws = weight_spec::int8(),
                                  isa level = best_isa()) {
    detail::check_linear_weights(w, bias);
    if (ws.type != dtype::int8) detail::fail("quantized_linear::dynamic: weights must be int8");
    if (o.reduce_range && !o.pytorch_compatible)
      detail::fail("quantized_linear::dynamic: reduce_range applies to pytorch_compatible only");
    quantized_linear l(linear_mode::dynamic_w8a8, w, bias, ws, level);
    l.dyn_ = o;
    return l;
  }

  /// static_w8a8: `input` are the calibrated per-tensor activation parameters (uint8
  /// affine or int8 symmetric); with `output` the layer requantizes its result (and
  /// fuses ReLU when fuse_relu), else it produces f32.
  static quantized_linear static_quant(tensor_view<const float> w, span<const float> bias,
                                       const quant_params& input,
                                       std::optional<quant_params> output = std::nullopt,
                                       bool fuse_relu = false, weight_spec ws = weight_spec::int8(),
                                       isa level = best_isa()) {
    detail::check_linear_weights(w, bias);
    if (ws.type != dtype::int8)
      detail::fail("quantized_linear::static_quant: weights must be int8");
    check_static_params(input, "input");
    if (output) check_static_params(*output, "output");
    if (fuse_relu && !output)
      detail::fail(
          "quantized_linear::static_quant: fuse_relu needs output parameters "
          "(f32 outputs apply ReLU outside the layer)");
    quantized_linear l(linear_mode::static_w8a8, w, bias, ws, level);
    l.in_params_ = input;
    l.out_params_ = output;
    l.fuse_relu_ = fuse_relu;
    l.prepare_static();
    return l;
  }

  /// weight_only: int8 (per channel / per tensor) or int4 (per group), symmetric.
  static quantized_linear weight_only(tensor_view<const float> w, span<const float> bias = {},
                                      weight_spec ws = weight_spec::int4(),
                                      isa level = best_isa()) {
    detail::check_linear_weights(w, bias);
    if (ws.scheme != scheme::symmetric)
      detail::fail("quantized_linear::weight_only: weights must be symmetric");
    return quantized_linear(linear_mode::weight_only, w, bias, ws, level);
  }

  /// w4a8: int4 per-group weights x int8 per-row dynamic activations.
  static quantized_linear w4a8(tensor_view<const float> w, span<const float> bias = {},
                               weight_spec ws = weight_spec::int4(), isa level = best_isa()) {
    detail::check_linear_weights(w, bias);
    if (ws.type != dtype::int4) detail::fail("quantized_linear::w4a8: weights must be int4");
    return quantized_linear(linear_mode::w4a8, w, bias, ws, level);
  }

  /// The DESIGN sketch's one-liner: int8 specs give dynamic_w8a8 (per-row
  /// activations), int4 specs give w4a8.
  static quantized_linear from_float(const matrixf& w, const vectorf& b, weight_spec ws,
                                     isa level = best_isa()) {
    const span<const float> bias = b.size() ? view(b) : span<const float>();
    if (ws.type == dtype::int4) return w4a8(view(w), bias, ws, level);
    return dynamic(view(w), bias, {}, ws, level);
  }

  /// Rebuilds a layer from already-quantized weights (what io/model_io.hpp loads).
  /// `in_features` may be smaller than the weights' K (zero-padded last group); 0 = K.
  static quantized_linear from_quantized(linear_mode mode, const quantized_tensor& weights,
                                         std::vector<float> bias, std::int64_t in_features = 0,
                                         dynamic_options dyn = {},
                                         std::optional<quant_params> input = std::nullopt,
                                         std::optional<quant_params> output = std::nullopt,
                                         bool fuse_relu = false, isa level = best_isa()) {
    quantized_linear l;
    l.mode_ = mode;
    l.packed_ = packed_weights::pack(weights, level);
    const std::int64_t kp = l.packed_.k();
    l.k_ = in_features == 0 ? kp : in_features;
    const bool padded_ok =
        l.packed_.format() == weight_format::s4 && l.k_ > kp - l.packed_.group_size();
    if (l.k_ > kp || (l.k_ < kp && !padded_ok))
      detail::fail("quantized_linear::from_quantized: in_features ", l.k_,
                   " does not fit weights with K = ", kp);
    l.bias_ = std::move(bias);
    if (!l.bias_.empty() && static_cast<std::int64_t>(l.bias_.size()) != l.packed_.n())
      detail::fail("quantized_linear::from_quantized: bias has ", l.bias_.size(),
                   " entries for out_features = ", l.packed_.n());
    l.dyn_ = dyn;
    if (mode == linear_mode::static_w8a8) {
      if (!input) detail::fail("quantized_linear::from_quantized: static mode needs input params");
      check_static_params(*input, "input");
      if (output) check_static_params(*output, "output");
      l.in_params_ = *input;
      l.out_params_ = output;
      l.fuse_relu_ = fuse_relu;
      l.prepare_static();
    }
    l.check_mode_format();
    return l;
  }

  // ---- forward ------------------------------------------------------------------

  /// y[m x out] = layer(x[m x in]); row strides ldx, ldy in elements. Runs the kernel
  /// table chosen at construction (isa()) for every step, activation quantization
  /// included. After a thread's first call of a given size, no heap allocation
  /// (ctx.threads == 1; per-thread scratch, detail/gemm/driver.hpp).
  void forward(const float* x, std::int64_t m, std::int64_t ldx, float* y, std::int64_t ldy,
               const gemm_context& ctx = {}) const {
    check_forward(x, m, ldx, y, ldy);
    if (m == 0) return;
    if (!is_available(packed_.level()))
      detail::fail("quantized_linear::forward: layer was built for isa ", to_string(isa()),
                   ", not available here");
    switch (mode_) {
      case linear_mode::weight_only:
        return forward_weight_only(x, m, ldx, y, ldy, ctx);
      case linear_mode::w4a8:
        return forward_rows(x, m, ldx, y, ldy, ctx);
      case linear_mode::dynamic_w8a8:
        if (dyn_.activations == dynamic_options::granularity::per_row && !dyn_.pytorch_compatible)
          return forward_rows(x, m, ldx, y, ldy, ctx);
        return forward_tensor(x, m, ldx, y, ldy, ctx);
      case linear_mode::static_w8a8:
        return forward_static(x, m, ldx, y, ldy, ctx);
    }
  }

  /// Eigen convenience: f32 in, f32 out.
  matrixf operator()(const Eigen::Ref<const matrixf>& x, const gemm_context& ctx = {}) const {
    matrixf y(x.rows(), out_features());
    forward(x.data(), x.rows(), x.outerStride(), y.data(), out_features(), ctx);
    return y;
  }

  /// static_w8a8 with output parameters: quantized in (input_params() storage: uint8_t
  /// for uint8, int8 bytes for int8) and quantized out (output_params()), the path
  /// between layers of a statically quantized network.
  void forward_quantized(const std::uint8_t* xq, std::int64_t m, std::int64_t ldx, std::uint8_t* yq,
                         std::int64_t ldy, const gemm_context& ctx = {}) const {
    if (mode_ != linear_mode::static_w8a8 || !out_params_)
      detail::fail(
          "quantized_linear::forward_quantized: needs static_w8a8 with output params, "
          "this layer is ",
          to_string(mode_));
    if (m < 0 || ldx < in_features() || ldy < out_features())
      detail::fail("quantized_linear::forward_quantized: bad shape m = ", m, ", ldx = ", ldx,
                   ", ldy = ", ldy, " for [", in_features(), " -> ", out_features(), "]");
    if (m == 0) return;
    activations a = static_activations(xq, m);
    a.ld = ldx;
    const epilogue e = requant_epilogue();
    detail::gemm_call call;
    detail::validate_gemm(call, a, packed_, e, out_buffer(yq, ldy), ctx, &requant_);
    detail::run_gemm(call);
  }

  // ---- introspection --------------------------------------------------------------
  linear_mode mode() const noexcept { return mode_; }
  lowbit::isa isa() const noexcept { return packed_.level(); }
  std::int64_t in_features() const noexcept { return k_; }
  std::int64_t out_features() const noexcept { return packed_.n(); }
  const packed_weights& weights() const noexcept { return packed_; }
  const std::vector<float>& bias() const noexcept { return bias_; }
  const dynamic_options& dynamic_settings() const noexcept { return dyn_; }
  const quant_params& input_params() const noexcept { return in_params_; }
  const std::optional<quant_params>& output_params() const noexcept { return out_params_; }
  bool fuses_relu() const noexcept { return fuse_relu_; }
  /// Bytes this layer owns: packed weights, scales, sums, bias.
  std::size_t memory_bytes() const noexcept {
    return packed_.memory_bytes() + bias_.size() * sizeof(float);
  }
  std::string describe() const {
    std::string s =
        std::string(to_string(mode_)) + " " + to_string(packed_.format()) +
        (packed_.format() == weight_format::s4 ? "g" + std::to_string(packed_.group_size()) : "") +
        " [" + std::to_string(in_features()) + " -> " + std::to_string(out_features()) + "] on " +
        to_string(isa());
    return s;
  }

 private:
  quantized_linear(linear_mode mode, tensor_view<const float> w, span<const float> bias,
                   const weight_spec& ws, lowbit::isa level)
      : mode_(mode), k_(w.shape[1]), bias_(bias.begin(), bias.end()) {
    packed_ = packed_weights::pack(ws.quantize(w), level);
    check_mode_format();
  }

  void check_mode_format() const {
    const bool s4 = packed_.format() == weight_format::s4;
    if ((mode_ == linear_mode::w4a8) != s4 && mode_ != linear_mode::weight_only)
      detail::fail("quantized_linear: mode ", to_string(mode_), " cannot use ",
                   to_string(packed_.format()), " weights");
    if (mode_ == linear_mode::weight_only && packed_.has_zero_points())
      detail::fail("quantized_linear: weight_only needs symmetric weights");
  }

  static void check_static_params(const quant_params& p, const char* what) {
    p.validate();
    if (!p.granularity.is_per_tensor() || p.scales.size() != 1)
      detail::fail("quantized_linear::static_quant: ", what, " params must be per tensor");
    if (p.type != dtype::uint8 && p.type != dtype::int8)
      detail::fail("quantized_linear::static_quant: ", what, " params must be uint8 or int8, got ",
                   to_string(p.type));
    if (p.type == dtype::int8 && p.zero_points[0] != 0 && std::string(what) == "input")
      detail::fail(
          "quantized_linear::static_quant: int8 input params must be symmetric "
          "(zero point 0), got ",
          p.zero_points[0]);
  }

  void check_forward(const float* x, std::int64_t m, std::int64_t ldx, const float* y,
                     std::int64_t ldy) const {
    if (packed_.n() == 0) detail::fail("quantized_linear::forward: empty layer");
    if (m < 0) detail::fail("quantized_linear::forward: negative batch ", m);
    if (ldx < in_features())
      detail::fail("quantized_linear::forward: input has row stride ", ldx,
                   " < in_features = ", in_features());
    if (ldy < out_features())
      detail::fail("quantized_linear::forward: output row stride ", ldy,
                   " < out_features = ", out_features());
    if (m > 0 && (x == nullptr || y == nullptr))
      detail::fail("quantized_linear::forward: null input or output");
  }

  const detail::kernel_table& table() const noexcept { return packed_.table(); }

  void forward_weight_only(const float* x, std::int64_t m, std::int64_t ldx, float* y,
                           std::int64_t ldy, const gemm_context& ctx) const {
    const std::int64_t K = in_features(), kp = packed_.k();
    const detail::kernel_table& kt = table();
    for (std::int64_t r = 0; r < m; ++r) {
      const std::int64_t c = kt.quant.find_nonfinite(x + r * ldx, K);
      if (c >= 0)  // the index as if x were a contiguous [m x K] tensor
        detail::fail("quantized_linear::forward: non-finite value ", x[r * ldx + c], " at index ",
                     r * K + c);
    }
    if (kp == K) {
      detail::weight_only_gemm(x, m, ldx, packed_, span<const float>(bias_), y, ldy, ctx.threads);
      return;
    }
    // zero-padded last group: pad the activations too
    float* xp = detail::layer_scratch::grow(detail::layer_scratch::of_this_thread().floats, m * kp);
    for (std::int64_t r = 0; r < m; ++r) {
      std::copy(x + r * ldx, x + r * ldx + K, xp + r * kp);
      std::fill(xp + r * kp + K, xp + (r + 1) * kp, 0.0f);
    }
    detail::weight_only_gemm(xp, m, kp, packed_, span<const float>(bias_), y, ldy, ctx.threads);
  }

  /// Runs the GEMM of this layer on activations prepared in the kernels' u8 domain.
  template <class Out>
  void run_prepared(detail::prepared_activations& a, std::int32_t za, span<const float> scales,
                    const epilogue& e, Out* yp, std::int64_t ldy, const gemm_context& ctx,
                    const detail::requant_terms* pre = nullptr) const {
    // The prepared bytes are u8 with zero point za (int8 data was shifted by 128).
    const activations desc = activations::u8(a.data, a.m, packed_.k(), a.ld, za, scales);
    detail::gemm_call call;
    detail::validate_gemm(call, desc, packed_, e, output(yp, ldy), ctx, pre);
    detail::run_prepared(call, a);
  }

  /// dynamic_w8a8 per row and w4a8: per row, one read for the range (and the finite
  /// check), one to quantize straight into the kernels' u8 domain (q + 128, narrow
  /// [-127, 127]), the sums from the bytes just written.
  void forward_rows(const float* x, std::int64_t m, std::int64_t ldx, float* y, std::int64_t ldy,
                    const gemm_context& ctx) const {
    const std::int64_t K = in_features();
    const detail::kernel_table& kt = table();
    detail::layer_scratch& ls = detail::layer_scratch::of_this_thread();
    float* scales = detail::layer_scratch::grow(ls.scales, m);
    detail::prepared_activations a;
    detail::reserve_activations(packed_, kt, m, a);
    const qparams_options o = qparams_options::symmetric(dtype::int8, symmetric_convention::narrow);
    const auto& quantize_u8 = kt.quant.quantize[static_cast<int>(detail::qstore::u8)][0][0];
    for (std::int64_t r = 0; r < m; ++r) {
      const float* row = x + r * ldx;
      float mn = 0.0f, mx = 0.0f;
      const std::int64_t c = detail::scan_range(row, K, mn, mx);
      if (c >= 0) detail::fail_nonfinite("quantized_linear::forward", row[c], r, c);
      float scale = 0.0f;
      std::int32_t zp = 0;
      detail::scale_zero_point(mn, mx, o, -127, 127, scale, zp);
      scales[r] = scale;
      // clamp(128 + rne(x / s), 1, 255) == clamp(rne(x / s), -127, 127) + 128, exactly
      quantize_u8(row, K, nullptr, nullptr, detail::qconst{1.0f / scale, 128.0f, 1.0f, 255.0f},
                  a.data + r * a.ld);
      detail::finish_prepared_row(kt, a, r, K);
    }
    run_prepared(a, 128, span<const float>(scales, static_cast<std::size_t>(m)),
                 epilogue::f32(span<const float>(bias_)), y, ldy, ctx);
  }

  /// dynamic_w8a8 per tensor (uint8 affine, or PyTorch's dynamic rule): one read for
  /// the range of the whole input, one to quantize into the kernels' u8 domain.
  void forward_tensor(const float* x, std::int64_t m, std::int64_t ldx, float* y, std::int64_t ldy,
                      const gemm_context& ctx) const {
    const std::int64_t K = in_features();
    const detail::kernel_table& kt = table();
    float mn = x[0], mx = x[0];
    for (std::int64_t r = 0; r < m; ++r) {
      float lo = 0.0f, hi = 0.0f;
      const std::int64_t c = detail::scan_range(x + r * ldx, K, lo, hi);
      if (c >= 0) detail::fail_nonfinite("quantized_linear::forward", x[r * ldx + c], r, c);
      mn = std::min(mn, lo);
      mx = std::max(mx, hi);
    }
    float scale = 0.0f;
    std::int32_t zp = 0;
    if (dyn_.pytorch_compatible) {
      detail::dynamic_scale_zero_point(mn, mx, dyn_.reduce_range, scale, zp);
    } else {
      const qparams_options o = qparams_options::affine();
      detail::scale_zero_point(mn, mx, o, 0, 255, scale, zp);
    }
    detail::prepared_activations a;
    detail::reserve_activations(packed_, kt, m, a);
    const auto& quantize_u8 = kt.quant.quantize[static_cast<int>(detail::qstore::u8)][0][0];
    const detail::qconst q{1.0f / scale, static_cast<float>(zp), 0.0f, 255.0f};
    for (std::int64_t r = 0; r < m; ++r) {
      quantize_u8(x + r * ldx, K, nullptr, nullptr, q, a.data + r * a.ld);
      detail::finish_prepared_row(kt, a, r, K);
    }
    run_prepared(a, zp, span<const float>(&scale, 1), epilogue::f32(span<const float>(bias_)), y,
                 ldy, ctx);
  }

  /// static_w8a8: the calibrated input parameters, quantized straight into the kernels'
  /// u8 domain (int8 inputs shifted by 128); requantize terms from construction.
  void forward_static(const float* x, std::int64_t m, std::int64_t ldx, float* y, std::int64_t ldy,
                      const gemm_context& ctx) const {
    const std::int64_t K = in_features(), N = out_features();
    const detail::kernel_table& kt = table();
    for (std::int64_t r = 0; r < m; ++r) {
      const std::int64_t c = kt.quant.find_nonfinite(x + r * ldx, K);
      if (c >= 0)
        detail::fail("quantize: non-finite value ", x[r * ldx + c], " at index ", r * K + c);
    }
    detail::prepared_activations a;
    detail::reserve_activations(packed_, kt, m, a);
    const auto& quantize_u8 = kt.quant.quantize[static_cast<int>(detail::qstore::u8)][0][0];
    for (std::int64_t r = 0; r < m; ++r) {
      quantize_u8(x + r * ldx, K, nullptr, nullptr, in_q_, a.data + r * a.ld);
      detail::finish_prepared_row(kt, a, r, K);
    }
    const span<const float> sx(in_params_.scales);
    if (!out_params_) {
      run_prepared(a, in_za_, sx, epilogue::f32(span<const float>(bias_)), y, ldy, ctx);
      return;
    }
    detail::layer_scratch& ls = detail::layer_scratch::of_this_thread();
    std::uint8_t* yq = detail::layer_scratch::grow(ls.bytes, m * N);
    const epilogue e = requant_epilogue();
    if (out_params_->type == dtype::int8) {
      run_prepared(a, in_za_, sx, e, reinterpret_cast<std::int8_t*>(yq), N, ctx, &requant_);
    } else {
      run_prepared(a, in_za_, sx, e, yq, N, ctx, &requant_);
    }
    const float so = out_params_->scales[0];
    const std::int32_t zo = out_params_->zero_points[0];
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t c = 0; c < N; ++c)
        y[r * ldy + c] =
            detail::dequantize_one(detail::load_stored(out_params_->type, yq, r * N + c), so, zo);
  }

  /// The layer-constant terms of static mode: the input quantization in the kernels'
  /// u8 domain and the requantize multipliers / quantized bias (computed once here,
  /// not per call).
  void prepare_static() {
    const std::int32_t shift = in_params_.type == dtype::int8 ? 128 : 0;
    in_za_ = in_params_.zero_points[0] + shift;
    in_q_ = detail::qconst{1.0f / in_params_.scales[0], static_cast<float>(in_za_),
                           static_cast<float>(in_params_.quant_min + shift),
                           static_cast<float>(in_params_.quant_max + shift)};
    if (out_params_)
      requant_ = detail::make_requant_terms(in_params_.scales[0], packed_, requant_epilogue());
  }

  activations static_activations(const std::uint8_t* q, std::int64_t m) const {
    activations a;
    a.data = q;
    a.type = in_params_.type;
    a.m = m;
    a.k = in_features();
    a.ld = in_features();
    a.zero_point = in_params_.zero_points[0];
    a.scales = span<const float>(in_params_.scales);
    return a;
  }

  epilogue requant_epilogue() const {
    epilogue e = epilogue::requantize(out_params_->type, out_params_->scales[0],
                                      out_params_->zero_points[0], span<const float>(bias_));
    if (fuse_relu_) e.relu();
    return e;
  }

  output out_buffer(std::uint8_t* p, std::int64_t ld) const {
    return out_params_->type == dtype::int8 ? output(reinterpret_cast<std::int8_t*>(p), ld)
                                            : output(p, ld);
  }

  linear_mode mode_ = linear_mode::dynamic_w8a8;
  std::int64_t k_ = 0;  ///< in_features; packed_.k() may be larger (zero-padded groups)
  packed_weights packed_;
  std::vector<float> bias_;
  dynamic_options dyn_;
  quant_params in_params_;
  std::optional<quant_params> out_params_;
  bool fuse_relu_ = false;
  // static_w8a8, computed once by prepare_static():
  std::int32_t in_za_ = 0;             ///< input zero point in the kernels' u8 domain
  detail::qconst in_q_{1, 0, 0, 255};  ///< input quantization into that domain
  detail::requant_terms requant_;      ///< with output params
};

/// The fp32 baseline with the same interface (Eigen GEMM).
class float_linear {
 public:
  float_linear() = default;
  float_linear(matrixf w, vectorf b = vectorf()) : w_(std::move(w)), b_(std::move(b)) {
    if (w_.rows() == 0 || w_.cols() == 0)
      detail::fail("float_linear: empty weights [", w_.rows(), " x ", w_.cols(), "]");
    if (b_.size() != 0 && b_.size() != w_.rows())
      detail::fail("float_linear: bias has ", b_.size(), " entries for out_features = ", w_.rows());
  }
  /// y = x W^T + b on the process's float GEMM (layers/fp32_gemm.hpp; default Eigen).
  matrixf operator()(const Eigen::Ref<const matrixf>& x, const gemm_context& ctx = {}) const {
    if (x.cols() != w_.cols())
      detail::fail("float_linear: input has ", x.cols(), " features, layer expects ", w_.cols());
    const fp32_gemm_backend g = fp32_gemm();
    matrixf y(x.rows(), w_.rows());
    if (g.run != nullptr && x.rows() > 0) {
      g.run(x.rows(), w_.rows(), w_.cols(), x.data(), x.outerStride(), w_.data(), w_.cols(),
            y.data(), w_.rows(), ctx.threads);
    } else {
      y.noalias() = x * w_.transpose();
    }
    if (b_.size()) y.rowwise() += b_.transpose();
    return y;
  }
  void forward(const float* x, std::int64_t m, std::int64_t ldx, float* y, std::int64_t ldy,
               const gemm_context& ctx = {}) const {
    using stride = Eigen::OuterStride<>;
    Eigen::Map<const matrixf, 0, stride> xm(x, m, w_.cols(), stride(ldx));
    Eigen::Map<matrixf, 0, stride> ym(y, m, w_.rows(), stride(ldy));
    ym = (*this)(xm, ctx);
  }
  lowbit::isa isa() const noexcept { return isa::portable; }
  std::int64_t in_features() const noexcept { return w_.cols(); }
  std::int64_t out_features() const noexcept { return w_.rows(); }
  const matrixf& weight() const noexcept { return w_; }
  const vectorf& bias() const noexcept { return b_; }
  std::size_t memory_bytes() const noexcept {
    return static_cast<std::size_t>(w_.size() + b_.size()) * sizeof(float);
  }
  std::string describe() const {
    return "float_linear f32 [" + std::to_string(in_features()) + " -> " +
           std::to_string(out_features()) + "] on " + fp32_gemm().name;
  }

 private:
  matrixf w_;
  vectorf b_;
};

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_LAYERS_LINEAR_HPP_
