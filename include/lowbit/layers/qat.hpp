// SPDX-License-Identifier: Apache-2.0
// layers/qat.hpp: quantization-aware training helpers: fake-quantize forward, the
// straight-through-estimator backward, LSQ scale/zero-point gradients, and a small
// stateful fake_quant in the spirit of torch.ao.quantization.FakeQuantize.
//
// What fake quantization is
// -------------------------
// Quantization-aware training (QAT) trains a float model that already "sees" the
// rounding it will suffer once converted to integers. Every tensor that will be
// integer at inference (weights; activations at quantized layer boundaries) goes
// through, in the forward pass,
//
//   y = fake_quantize(x) = dequantize(quantize(x))
//     = (clamp(zp + rne(x * inv_s), qmin, qmax) - zp) * s,      inv_s = 1.0f / s
//
// y is a float, but it only takes the 2^b values the integer model can represent.
// lowbit computes each element with detail::quantize_one and detail::dequantize_one
// (detail/quant/rounding.hpp), so fake_quantize(x) is BIT-IDENTICAL to
// lowbit::dequantize(lowbit::quantize(x)) for every dtype, granularity and view: the
// numbers the converted model produces are the numbers it was trained with.
//
// The straight-through estimator (STE)
// ------------------------------------
// y is piecewise constant in x, so its true derivative is 0 almost everywhere and
// would stop training. The STE (Bengio et al. 2013; Jacob et al. 2018) treats the
// rounding as the identity and keeps the clamp:
//
//   q      = zp + rne(x * inv_s)           (float, NOT clamped: what quantize clamps)
//   mask   = (qmin <= q) && (q <= qmax)
//   grad_x = grad_y * mask
//
// This is exactly PyTorch's fake_quantize_per_tensor_affine / _per_channel_affine:
// the forward computes the mask ("cachemask") as
//   qval_f = z_point + std::nearbyint(x * inv_scale);
//   mask   = (quant_min <= qval_f) && (qval_f <= quant_max)
// (aten/src/ATen/native/quantized/cpu/kernels/QuantizedOpKernels.cpp,
// _fake_quantize_tensor_helper and _fake_quant_per_channel_cachemask_cpu_helper) and
// the backward is `dY * mask` (aten/src/ATen/native/quantized/
// FakeQuantPerTensorAffine.cpp, fake_quantize_per_tensor_affine_cachemask_backward;
// FakeQuantPerChannelAffine.cpp likewise). The mask tests the ROUNDED value: an x
// that rounds onto qmin or qmax is inside (its gradient passes), the first x that
// rounds to qmin - 1 or qmax + 1 is outside. With s = 0.5, zp = 0, int8: x = 63.5
// (q = 127) passes, 63.75 (2x = 127.5 rounds to even 128) does not, and 63.25
// (126.5 rounds to 126) passes. grad_y * mask is a product, as in torch: outside the
// range a negative gradient becomes -0.0 and a NaN gradient stays NaN.
//
// LSQ: learned step size
// ----------------------
// Esser et al., "Learned Step Size Quantization", ICLR 2020, train the scale s by
// gradient descent; LSQ+ and PyTorch's _LearnableFakeQuantize also train zp.
// Differentiating y = (clamp(q) - zp) * s with the STE for the rounding:
//
//   inside  (qmin <= q <= qmax):  dy/ds = (q - zp) - x / s      dy/dzp = 0
//   below   (q < qmin):           dy/ds = qmin - zp             dy/dzp = -s
//   above   (q > qmax):           dy/ds = qmax - zp             dy/dzp = -s
//
// (the paper's -v/s + round(v/s), -Q_N and Q_P, for zp = 0). Each element's term is
// evaluated in float32 in PyTorch's order of operations
// (QuantizedOpKernels.cpp, fake_quantize_learnable_tensor_grad_kernel_cpu and
// fake_quantize_learnable_channel_grad_kernel_cpu), with dy = grad_y, g = grad_factor:
//
//   xfq    = (q - zp) * s                      the forward output y
//   inside: dS = ((dy * (xfq - x)) * inv_s) * g              dZ = 0
//   below:  dS = (dy * float(qmin - zp)) * g                 dZ = ((-dy) * s) * g
//   above:  dS = (dy * float(qmax - zp)) * g                 dZ = ((-dy) * s) * g
//   grad_x = dy * mask                                       (the STE above)
//
// and the terms of the elements that share a (scale, zero_point) pair are summed in
// DOUBLE, in logical row-major element order, and rounded to float once
// (PyTorch sums a float tensor: dScale_vec.sum() in
// _fake_quantize_learnable_per_tensor_affine_backward, per-channel sums over all
// other axes; the two agree up to float summation error, lowbit's is deterministic).
//
// grad_factor: LSQ scales the step-size gradient by g = 1 / sqrt(N * Q_P), N the
// number of elements the step size serves and Q_P = quant_max: lsq_grad_factor().
// torch's _LearnableFakeQuantize(use_grad_scaling=True) passes
// 1.0 / (X.numel() * quant_max) ** 0.5 (torch/ao/quantization/
// _learnable_fake_quantize.py) for per-tensor and per-channel alike; for per-channel
// or per-group scales the paper's reasoning gives N = elements per scale. Pick N.
//
// Deliberate differences from torch's learnable kernels:
//  1. q. torch's learnable BACKWARD rounds nearbyint(zp + x * inv_s), while its
//     forward (fake_quantize_per_*_affine) rounds zp + nearbyint(x * inv_s). The two
//     differ on exact ties when zp is odd (x * inv_s = 2.5, zp = 1: 4 versus 3) and
//     when zp + x * inv_s is itself rounded in float. lowbit uses the forward's q
//     everywhere, so the mask and the gradient belong to the function computed.
//  2. Zero points are integers in lowbit and are used as they are. torch keeps a
//     float zp, rounds it with nearbyint in the forward and with trunc(zp + 0.5) in
//     the per-tensor backward (which is zp + 1 for a negative integer zp).
//  3. scheme::symmetric: the zero point is not a parameter; lsq_grads::zero_point is
//     left EMPTY (torch computes a gradient, then zeroes zp on every forward).
//  torch also requires quant_min <= 0 <= quant_max for the learnable ops; lowbit
//  does not need it.
//
// fake_quant, and how it maps to torch.ao.quantization
// ----------------------------------------------------
//   torch                                            lowbit
//   FakeQuantize()  (quint8 affine [0, 255],         fake_quant()  (the same default)
//     MovingAverageMinMaxObserver(0.01))
//   FakeQuantize(observer=PerChannelMinMaxObserver,  fake_quant(o, per_channel{axis},
//     ch_axis=axis)                                             qat_observer::minmax())
//   enable_observer / disable_observer               enable_observer(true / false)
//   enable_fake_quant / disable_fake_quant           enable_fake_quant(true / false)
//   forward: observe when enabled, calculate_qparams, forward(x, y): the same
//     fake-quantize when enabled, else identity
//   autograd backward (STE mask)                     backward(x, grad_y, grad_x)
//   _LearnableFakeQuantize.enable_param_learning()   enable_observer(false), then per
//     + optimizer step on scale / zero_point           step backward_lsq(...) and
//                                                      set_scales / set_zero_points
// set_scales clamps to eps like torch's `scale.data.clamp_(min=eps)`; set_zero_points
// rounds half to even and clamps to [quant_min, quant_max] like calculate_qparams.
// backward() and backward_lsq() use the CURRENT params(): call them before changing
// the parameters (the forward that produced y used the same ones).
//
// A training step in plain C++ (a weight w, fake-quantized int4 per channel):
//
//   lowbit::fake_quant fq(lowbit::qparams_options::symmetric(lowbit::dtype::int4),
//                         lowbit::per_channel{0}, lowbit::qat_observer::minmax());
//   fq.forward(w_view, wq_view);             // observe w, choose params, fake-quantize
//   ... loss(wq), d loss / d wq -> g_wq ...
//   fq.backward(w_view, g_wq_view, g_w_view); // STE: g_w = g_wq where not clipped
//   for (i...) w[i] -= lr * g_w[i];
//
// Errors, non-finite input, aliasing
// ----------------------------------
// Every function validates before it writes anything: invalid params or a
// granularity that does not fit x (quant_params::validate), views of different
// shapes ("<fn>: y has shape [2, 3] but x has shape [3, 2]"), null data, and NaN/Inf
// in x, which under the default quantize_options throws lowbit::error naming the
// first bad element's logical index, exactly like quantize ("<fn>: non-finite value
// nan at index 5"). With nonfinite_policy::saturate the forward follows quantize's
// saturation (NaN -> real 0, +-Inf -> the clamp ends) and the backward sees the same
// values (NaN as 0, so its mask is 1; +-Inf outside the range). grad_y is not
// checked: a non-finite gradient propagates, as in torch.
// Aliasing: an output may be the SAME view as an input (same data pointer, shape and
// strides) - y == x for an in-place fake-quantize, grad_x == grad_y or grad_x == x -
// since each element is read before it is written. Outputs that partially overlap an
// input are not supported.
#ifndef LOWBIT_LAYERS_QAT_HPP_
#define LOWBIT_LAYERS_QAT_HPP_

#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "lowbit/calibrate.hpp"
#include "lowbit/choose_qparams.hpp"
#include "lowbit/detail/calib/observe.hpp"
#include "lowbit/detail/core/macros.hpp"
#include "lowbit/detail/quant/rounding.hpp"
#include "lowbit/detail/quant/walk.hpp"
#include "lowbit/error.hpp"
#include "lowbit/isa.hpp"
#include "lowbit/quant_params.hpp"
#include "lowbit/quantize.hpp"
#include "lowbit/view.hpp"

LOWBIT_BEGIN_NAMESPACE

/// LSQ gradients, one entry per (scale, zero_point) pair, in quant_params order.
struct lsq_grads {
  std::vector<float> scale;       ///< d loss / d scale
  std::vector<float> zero_point;  ///< d loss / d zero_point (affine); EMPTY for symmetric
};

/// LSQ's gradient scale g = 1 / sqrt(elements * quant_max) (computed in double, rounded
/// to float once). `elements`: how many elements one scale serves (torch passes the
/// whole tensor's numel). Throws unless both are > 0.
inline float lsq_grad_factor(std::int64_t elements, std::int32_t quant_max) {
  if (elements <= 0 || quant_max <= 0)
    detail::fail("lsq_grad_factor: elements (", elements, ") and quant_max (", quant_max,
                 ") must be > 0");
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(elements) * quant_max));
}

namespace detail {

inline std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

template <class T>
inline void check_same_shape(const char* who, const char* name, const tensor_view<T>& v,
                             const tensor_view<const float>& x) {
  if (v.shape != x.shape)
    fail(who, ": ", name, " has shape ", shape_string(v.shape), " but x has shape ",
         shape_string(x.shape));
  if (v.numel() > 0 && v.data == nullptr) fail(who, ": ", name, " data is null");
}

/// Validation shared by every QAT entry point: params fit x, x is non-null and (under
/// the error policy) finite.
inline void check_qat_input(const char* who, const tensor_view<const float>& x,
                            const quant_params& p, const quantize_options& o) {
  p.validate(x.shape);
  if (x.numel() > 0 && x.data == nullptr) fail(who, ": x data is null");
  if (o.nonfinite == nonfinite_policy::error && x.numel() > 0)
    check_finite(detail::best_table(), x, who);
}

/// Per-pair constants, resolved once per call.
struct qat_consts {
  std::vector<float> scale, inv, zpf;
  float lo = 0, hi = 0;
  explicit qat_consts(const quant_params& p)
      : scale(p.scales),
        inv(p.scales.size()),
        zpf(p.scales.size()),
        lo(static_cast<float>(p.quant_min)),
        hi(static_cast<float>(p.quant_max)) {
    for (std::size_t i = 0; i < scale.size(); ++i) {
      inv[i] = 1.0f / scale[i];
      zpf[i] = static_cast<float>(p.zero_points[i]);
    }
  }
};

/// x as quantize reads it: NaN -> 0 under the saturate policy (validated finite otherwise).
inline float qat_read(float v, bool saturate) noexcept {
  return (saturate && std::isnan(v)) ? 0.0f : v;
}

/// The UNCLAMPED quantized value zp + rne(x * inv_s), in float: exactly the value
/// detail::quantize_one clamps.
inline float unclamped_q(float x, float inv, float zpf) noexcept {
  return zpf + round_half_even(x * inv);
}

}  // namespace detail

// ---------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------

/// y = dequantize(quantize(x)), bit-identical to lowbit::quantize then
/// lowbit::dequantize. Any granularity, strided views; y may be the same view as x.
inline void fake_quantize(tensor_view<const float> x, const quant_params& p, tensor_view<float> y,
                          quantize_options o = {}) {
  constexpr const char* who = "fake_quantize";
  detail::check_qat_input(who, x, p, o);
  detail::check_same_shape(who, "y", y, x);
  const detail::segmentation layout = detail::segmentation_of(p, x.shape);
  const detail::qat_consts c(p);
  const bool sat = o.nonfinite == nonfinite_policy::saturate;
  detail::for_each_index_n<2>(x.shape, {&x.strides, &y.strides},
                              [&](const std::array<std::int64_t, 2>& off, const std::int64_t* idx) {
                                const auto k = static_cast<std::size_t>(layout.index(idx));
                                const std::int32_t zp = p.zero_points[k];
                                const std::int32_t q =
                                    detail::quantize_one(detail::qat_read(x.data[off[0]], sat),
                                                         c.inv[k], zp, p.quant_min, p.quant_max);
                                y.data[off[1]] = detail::dequantize_one(q, c.scale[k], zp);
                              });
}

/// fake_quantize into a new contiguous vector (logical row-major order).
inline std::vector<float> fake_quantize(tensor_view<const float> x, const quant_params& p,
                                        quantize_options o = {}) {
  detail::check_qat_input("fake_quantize", x, p, o);  // before allocating
  std::vector<float> y(static_cast<std::size_t>(x.numel()));
  fake_quantize(x, p, tensor_view<float>(y.data(), x.shape), o);
  return y;
}

// ---------------------------------------------------------------------------------
// Backward
// ---------------------------------------------------------------------------------

/// STE backward: grad_x = grad_y * (qmin <= zp + rne(x * inv_s) <= qmax), torch's
/// cachemask rule (see the file comment). grad_x may be the same view as grad_y or x.
inline void fake_quantize_backward(tensor_view<const float> x, const quant_params& p,
                                   tensor_view<const float> grad_y, tensor_view<float> grad_x,
                                   quantize_options o = {}) {
  constexpr const char* who = "fake_quantize_backward";
  detail::check_qat_input(who, x, p, o);
  detail::check_same_shape(who, "grad_y", grad_y, x);
  detail::check_same_shape(who, "grad_x", grad_x, x);
  const detail::segmentation layout = detail::segmentation_of(p, x.shape);
  const detail::qat_consts c(p);
  const bool sat = o.nonfinite == nonfinite_policy::saturate;
  detail::for_each_index_n<3>(x.shape, {&x.strides, &grad_y.strides, &grad_x.strides},
                              [&](const std::array<std::int64_t, 3>& off, const std::int64_t* idx) {
                                const auto k = static_cast<std::size_t>(layout.index(idx));
                                const float q = detail::unclamped_q(
                                    detail::qat_read(x.data[off[0]], sat), c.inv[k], c.zpf[k]);
                                const float mask = (c.lo <= q && q <= c.hi) ? 1.0f : 0.0f;
                                grad_x.data[off[2]] = grad_y.data[off[1]] * mask;
                              });
}

/// LSQ backward: grad_x as fake_quantize_backward, and the scale (and, for the affine
/// scheme, zero-point) gradients per (scale, zero_point) pair, times grad_factor.
/// Formulas and summation order: see the file comment.
inline lsq_grads fake_quantize_lsq_backward(tensor_view<const float> x, const quant_params& p,
                                            tensor_view<const float> grad_y,
                                            tensor_view<float> grad_x, float grad_factor = 1.0f,
                                            quantize_options o = {}) {
  constexpr const char* who = "fake_quantize_lsq_backward";
  detail::check_qat_input(who, x, p, o);
  detail::check_same_shape(who, "grad_y", grad_y, x);
  detail::check_same_shape(who, "grad_x", grad_x, x);
  if (!std::isfinite(grad_factor))
    detail::fail(who, ": grad_factor must be finite, got ", grad_factor);
  const detail::segmentation layout = detail::segmentation_of(p, x.shape);
  const detail::qat_consts c(p);
  const bool sat = o.nonfinite == nonfinite_policy::saturate;
  const std::size_t np = p.scales.size();
  std::vector<double> ds(np, 0.0), dz(np, 0.0);
  const float g = grad_factor;
  detail::for_each_index_n<3>(
      x.shape, {&x.strides, &grad_y.strides, &grad_x.strides},
      [&](const std::array<std::int64_t, 3>& off, const std::int64_t* idx) {
        const auto k = static_cast<std::size_t>(layout.index(idx));
        const float v = detail::qat_read(x.data[off[0]], sat);
        const float dy = grad_y.data[off[1]];
        const float s = c.scale[k], zpf = c.zpf[k];
        const float q = detail::unclamped_q(v, c.inv[k], zpf);
        if (q < c.lo || q > c.hi) {
          const float edge = q < c.lo ? c.lo - zpf : c.hi - zpf;  // float(qmin - zp), exact
          ds[k] += static_cast<double>((dy * edge) * g);
          dz[k] += static_cast<double>(((-dy) * s) * g);
          grad_x.data[off[2]] = dy * 0.0f;
        } else {
          // fp32_round: keep torch's separately rounded product (no FMA contraction).
          const float xfq = detail::fp32_round((q - zpf) * s);
          ds[k] += static_cast<double>(((dy * (xfq - v)) * c.inv[k]) * g);
          grad_x.data[off[2]] = dy * 1.0f;
        }
      });
  lsq_grads r;
  r.scale.resize(np);
  for (std::size_t i = 0; i < np; ++i) r.scale[i] = static_cast<float>(ds[i]);
  if (p.scheme == scheme::affine) {
    r.zero_point.resize(np);
    for (std::size_t i = 0; i < np; ++i) r.zero_point[i] = static_cast<float>(dz[i]);
  }
  return r;
}

// ---------------------------------------------------------------------------------
// fake_quant: observer + parameters + fake-quantize, for a training loop
// ---------------------------------------------------------------------------------

/// Which observer a fake_quant uses (calibrate.hpp): running min/max, or torch's
/// exponential moving average of batch ranges (FakeQuantize's default).
struct qat_observer {
  enum class kind : std::uint8_t { minmax, moving_average };
  kind type = kind::moving_average;
  float averaging_constant = 0.01f;  ///< moving_average only, in (0, 1]

  static qat_observer minmax() { return {kind::minmax, 0.01f}; }
  static qat_observer moving_average(float c = 0.01f) { return {kind::moving_average, c}; }
};

/// torch.ao.quantization.FakeQuantize in plain C++ (see the file comment).
class fake_quant {
 public:
  explicit fake_quant(const qparams_options& o = qparams_options::affine(dtype::uint8),
                      lowbit::granularity g = per_tensor{},
                      qat_observer obs = qat_observer::moving_average())
      : opts_(o), observer_(make_observer(obs, g)) {
    resolve_quant_range(o);  // reject impossible options now, not at the first forward
  }

  void enable_observer(bool on = true) noexcept { observe_ = on; }
  void enable_fake_quant(bool on = true) noexcept { fake_ = on; }
  bool observer_enabled() const noexcept { return observe_; }
  bool fake_quant_enabled() const noexcept { return fake_; }

  /// Observes x and recomputes params() (observer enabled), then y = fake_quantize(x)
  /// (fake-quant enabled) or y = x. y may be the same view as x.
  void forward(tensor_view<const float> x, tensor_view<float> y) {
    detail::check_same_shape("fake_quant::forward", "y", y, x);
    if (observe_) {
      std::visit([&](auto& ob) { ob.observe(x); }, observer_);
      if (x.numel() > 0)
        params_ = std::visit([&](auto& ob) { return ob.compute(opts_); }, observer_);
    }
    if (fake_) {
      fake_quantize(x, params(), y);
    } else {
      copy(x, y);
    }
  }
  /// forward() into a new contiguous vector.
  std::vector<float> forward(tensor_view<const float> x) {
    std::vector<float> y(static_cast<std::size_t>(x.numel()));
    forward(x, tensor_view<float>(y.data(), x.shape));
    return y;
  }

  /// STE backward with the current params() (identity when fake-quant is disabled).
  void backward(tensor_view<const float> x, tensor_view<const float> grad_y,
                tensor_view<float> grad_x) const {
    if (fake_) {
      fake_quantize_backward(x, params(), grad_y, grad_x);
    } else {
      detail::check_same_shape("fake_quant::backward", "grad_y", grad_y, x);
      copy(grad_y, grad_x);
    }
  }

  /// LSQ backward with the current params(); zero scale/zero-point gradients (and
  /// grad_x = grad_y) when fake-quant is disabled.
  lsq_grads backward_lsq(tensor_view<const float> x, tensor_view<const float> grad_y,
                         tensor_view<float> grad_x, float grad_factor = 1.0f) const {
    if (fake_) return fake_quantize_lsq_backward(x, params(), grad_y, grad_x, grad_factor);
    detail::check_same_shape("fake_quant::backward_lsq", "grad_y", grad_y, x);
    copy(grad_y, grad_x);
    lsq_grads r;
    if (params_) {
      r.scale.assign(params_->scales.size(), 0.0f);
      if (params_->scheme == scheme::affine) r.zero_point.assign(params_->scales.size(), 0.0f);
    }
    return r;
  }

  bool has_params() const noexcept { return params_.has_value(); }
  /// The parameters forward() uses. Throws before the first observation or set_params().
  const quant_params& params() const {
    if (!params_)
      detail::fail(
          "fake_quant: no quantization parameters yet (run forward() with the "
          "observer enabled, or call set_params())");
    return *params_;
  }
  /// Replaces the parameters (validated). With the observer enabled the next forward()
  /// recomputes them: disable it to keep these (learning mode).
  void set_params(quant_params p) {
    p.validate();
    params_ = std::move(p);
  }
  /// LSQ update of the scales: non-finite -> error; values below options().eps
  /// (including <= 0) become eps, as torch's scale.data.clamp_(min=eps).
  void set_scales(span<const float> s) {
    const quant_params& cur = params();
    if (s.size() != cur.scales.size())
      detail::fail("fake_quant::set_scales: ", s.size(), " scales given, the parameters have ",
                   cur.scales.size());
    for (std::size_t i = 0; i < s.size(); ++i)
      if (!std::isfinite(s[i]))
        detail::fail("fake_quant::set_scales: scale[", i, "] = ", s[i], " is not finite");
    for (std::size_t i = 0; i < s.size(); ++i)
      params_->scales[i] = s[i] < opts_.eps ? opts_.eps : s[i];
  }
  /// LSQ update of affine zero points: rounded half to even and clamped to
  /// [quant_min, quant_max] (torch's calculate_qparams). Non-finite -> error.
  void set_zero_points(span<const float> z) {
    const quant_params& cur = params();
    if (cur.scheme != scheme::affine)
      detail::fail("fake_quant::set_zero_points: the symmetric scheme fixes the zero point");
    if (z.size() != cur.zero_points.size())
      detail::fail("fake_quant::set_zero_points: ", z.size(),
                   " zero points given, the parameters have ", cur.zero_points.size());
    for (std::size_t i = 0; i < z.size(); ++i)
      if (!std::isfinite(z[i]))
        detail::fail("fake_quant::set_zero_points: zero_point[", i, "] = ", z[i], " is not finite");
    const auto lo = static_cast<float>(cur.quant_min), hi = static_cast<float>(cur.quant_max);
    for (std::size_t i = 0; i < z.size(); ++i) {
      float r = detail::round_half_even(z[i]);
      r = r < lo ? lo : (r > hi ? hi : r);
      params_->zero_points[i] = static_cast<std::int32_t>(r);
    }
  }

  const qparams_options& options() const noexcept { return opts_; }
  /// Forgets the observed ranges and the parameters (switches stay as they are).
  void reset() noexcept {
    std::visit([](auto& ob) { ob.reset(); }, observer_);
    params_.reset();
  }

 private:
  using observer_t = std::variant<minmax_observer, moving_average_minmax_observer>;

  static observer_t make_observer(const qat_observer& o, const lowbit::granularity& g) {
    if (o.type == qat_observer::kind::minmax) return minmax_observer(g);
    return moving_average_minmax_observer(o.averaging_constant, g);
  }

  /// dst = src elementwise (same shape checked by the caller; dst may be src).
  static void copy(const tensor_view<const float>& src, const tensor_view<float>& dst) {
    detail::check_same_shape("fake_quant", "output", dst, src);
    if (src.numel() > 0 && src.data == nullptr) detail::fail("fake_quant: input data is null");
    detail::for_each_index_n<2>(src.shape, {&src.strides, &dst.strides},
                                [&](const std::array<std::int64_t, 2>& off, const std::int64_t*) {
                                  dst.data[off[1]] = src.data[off[0]];
                                });
  }

  qparams_options opts_;
  observer_t observer_;
  std::optional<quant_params> params_;
  bool observe_ = true;
  bool fake_ = true;
};

LOWBIT_END_NAMESPACE

#endif  // LOWBIT_LAYERS_QAT_HPP_
