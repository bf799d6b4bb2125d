// SPDX-License-Identifier: Apache-2.0
// fashion_mnist.cpp: accuracy of lowbit's quantization modes on real data.
//
// Trains an FP32 MLP 784-256-128-10 (ReLU) on the 60,000 Fashion-MNIST training images
// in plain C++ with Eigen (Adam, softmax cross-entropy, He init, seeded shuffling, cosine
// learning-rate decay), saves it as .safetensors (reused on later runs), then evaluates
// on the 10,000 test images: FP32; dynamic INT8; static INT8 with the min-max,
// percentile, histogram (L2) and entropy (KL) calibrators on 1,000 training images;
// weight-only INT4 per group (min-max and MSE clipping); W4A8; and QAT INT4: one epoch
// of fine-tuning from the FP32 model with the weights fake-quantized (int4 per group,
// symmetric, lowbit::fake_quantize) and the straight-through estimator
// (lowbit::fake_quantize_backward), then converted with the same weight-only INT4
// config and run with lowbit's integer kernels. The QAT model is cached too, keyed by
// a hash of the FP32 weights and the QAT settings.
//
// Input normalization, used everywhere (training, calibration, QAT, evaluation):
//   x = pixel / 255, i.e. uint8 [0, 255] -> float [0, 1]; no mean/std standardization.
//
// Choices: INT4 groups of 128 (784 inputs are zero-padded to 896 by quantized_linear; the
// targets are met without smaller groups, --group 32/64 is available); weights symmetric,
// min-max per group unless a row says MSE (weight_spec::with_mse()); static INT8 follows
// PyTorch eager mode (uint8 affine activations per tensor, requantized between layers, ReLU
// fused). The QAT forward uses exactly the parameters the converter chooses
// (weight_spec::quantize on the padded weights), so the converted model computes what QAT
// trained (the report prints both accuracies).
//
// Output: a Markdown table on stdout and in <out>/fashion_mnist.md, and the chart
// <out>/fashion_mnist_accuracy.svg. Data: the Debian package dataset-fashion-mnist
// (gzip IDX files under /usr/share/datasets/fashion-mnist).
//
// Cost (Release, 1 thread, a shared 2-core AMD EPYC with AVX-512 VNNI): the first run trains
// (10 epochs, ~6 s each, plus ~11 s of QAT): ~75 s wall; later runs load both cached models
// and only quantize and evaluate: ~6.5 s wall.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <lowbit/io/safetensors.hpp>
#include <lowbit/layers/qat.hpp>
#include <lowbit/lowbit.hpp>

#include "support/fp32_native.hpp"
#include "support/idx.hpp"
#include "support/report.hpp"

namespace fs = std::filesystem;
using lowbit::matrixf;
using lowbit::vectorf;

namespace {

constexpr int kLayers = 3;
constexpr std::array<std::int64_t, kLayers + 1> kDims = {784, 256, 128, 10};
constexpr const char* kArch = "mlp 784-256-128-10 relu";
constexpr const char* kNormalization = "x = pixel / 255 (uint8 [0, 255] -> float [0, 1])";

const char* kUsage =
    "usage: fashion_mnist [options]\n"
    "\n"
    "Trains an FP32 MLP 784-256-128-10 on Fashion-MNIST (cached as .safetensors), then\n"
    "compares the test accuracy, model size and latency of FP32, dynamic INT8, static INT8\n"
    "(min-max / percentile / histogram / entropy calibration), INT4 per-group weight-only\n"
    "and W4A8 (min-max and MSE clipping) and QAT INT4 (one epoch of fake-quant + STE).\n"
    "Input normalization everywhere: x = pixel / 255.\n"
    "\n"
    "options:\n"
    "  --data DIR         Fashion-MNIST gzip IDX files (default "
    "/usr/share/datasets/fashion-mnist,\n"
    "                     Debian package dataset-fashion-mnist)\n"
    "  --out DIR          results: fashion_mnist.md, fashion_mnist_accuracy.svg (default\n"
    "                     lowbit-results)\n"
    "  --cache DIR        trained models (default <out>/cache): fashion_mnist_mlp.safetensors\n"
    "                     and fashion_mnist_mlp_qat_int4_g<G>.safetensors\n"
    "  --retrain          train the FP32 and QAT models even when cached\n"
    "  --epochs N         FP32 training epochs (default 10)\n"
    "  --batch N          mini-batch size (default 128)\n"
    "  --lr X             Adam learning rate, cosine-decayed to 0 (default 0.001)\n"
    "  --seed N           init and shuffling seed (default 42)\n"
    "  --qat-epochs N     QAT fine-tuning epochs (default 1)\n"
    "  --qat-lr X         QAT Adam learning rate, cosine-decayed (default 0.0001)\n"
    "  --group N          INT4 group size, a multiple of 32 (default 128; 784 inputs are\n"
    "                     zero-padded to whole groups)\n"
    "  --calib N          static-INT8 calibration images, the first N training images\n"
    "                     (default 1000)\n"
    "  --train-limit N    use only the first N training images (default: all 60000)\n"
    "  --test-limit N     evaluate on the first N test images (default: all 10000)\n"
    "  --threads N        threads of lowbit's integer kernels and of the FP32 rows' GEMM\n"
    "                     (default 1; FP32 rows: OpenBLAS when installed, else Eigen built\n"
    "                     with -march=native; training: Eigen, single-threaded)\n"
    "  --reps N           timed repetitions for the batch-1 latency (default 300; the large\n"
    "                     batch uses N/10, at least 3); the median is reported\n"
    "  --latency-batch N  the large latency batch (default 256, at most the test images)\n"
    "  -h, --help         this text\n";

// ---- flags ---------------------------------------------------------------------------

double real_flag(example::flags& f, const std::string& k, double def) {
  const std::string v = f.str(k, "");
  if (v.empty()) return def;
  char* end = nullptr;
  const double r = std::strtod(v.c_str(), &end);
  if (*end != '\0' || !std::isfinite(r))
    throw std::runtime_error("--" + k + " expects a number, got '" + v + "'");
  return r;
}

long positive_flag(example::flags& f, const std::string& k, long def, long min = 1) {
  const long v = f.num(k, def);
  if (v < min)
    throw std::runtime_error("--" + k + " must be >= " + std::to_string(min) + ", got " +
                             std::to_string(v));
  return v;
}

std::string fmt_real(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

// ---- data ----------------------------------------------------------------------------

struct dataset {
  example::idx::images images;
  std::vector<std::uint8_t> labels;
  std::int64_t size() const { return images.count; }
};

dataset load_split(const fs::path& dir, const std::string& prefix, std::int64_t limit) {
  dataset d;
  const std::string img = (dir / (prefix + "-images-idx3-ubyte.gz")).string();
  const std::string lab = (dir / (prefix + "-labels-idx1-ubyte.gz")).string();
  d.images = example::idx::read_images(img, limit, 28, 28);
  d.labels = example::idx::read_labels(lab, limit, 10);
  if (static_cast<std::int64_t>(d.labels.size()) != d.images.count)
    throw std::runtime_error(img + " holds " + std::to_string(d.images.count) + " images but " +
                             lab + " holds " + std::to_string(d.labels.size()) + " labels");
  return d;
}

/// Rows [begin, begin + n) of `d` as floats with the one normalization: pixel / 255.
matrixf to_float(const dataset& d, std::int64_t begin, std::int64_t n) {
  matrixf x(n, kDims[0]);
  for (std::int64_t r = 0; r < n; ++r) {
    const std::uint8_t* p = d.images.image(begin + r);
    for (std::int64_t c = 0; c < kDims[0]; ++c) x(r, c) = static_cast<float>(p[c]) / 255.0f;
  }
  return x;
}

// ---- the model -----------------------------------------------------------------------

struct mlp {
  std::array<matrixf, kLayers> w;  ///< [out x in], like torch.nn.Linear.weight
  std::array<vectorf, kLayers> b;

  lowbit::sequential to_sequential() const {
    lowbit::sequential s;
    for (int l = 0; l < kLayers; ++l) {
      s.linear(w[l], b[l]);
      if (l + 1 < kLayers) s.add(lowbit::activation::relu);
    }
    return s;
  }
  /// FNV-1a 64 over every weight and bias byte: the QAT cache key.
  std::string fingerprint() const {
    std::uint64_t h = 1469598103934665603ull;
    auto eat = [&](const float* p, std::int64_t n) {
      const auto* c = reinterpret_cast<const unsigned char*>(p);
      for (std::int64_t i = 0; i < n * 4; ++i) h = (h ^ c[i]) * 1099511628211ull;
    };
    for (int l = 0; l < kLayers; ++l) {
      eat(w[l].data(), w[l].size());
      eat(b[l].data(), b[l].size());
    }
    char s[32];
    std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
    return s;
  }
};

std::string weight_name(int l) { return "fc" + std::to_string(l + 1) + ".weight"; }
std::string bias_name(int l) { return "fc" + std::to_string(l + 1) + ".bias"; }

mlp he_init(std::uint32_t seed) {
  mlp m;
  std::mt19937 rng(seed);
  for (int l = 0; l < kLayers; ++l) {
    const std::int64_t in = kDims[static_cast<std::size_t>(l)];
    const std::int64_t out = kDims[static_cast<std::size_t>(l) + 1];
    std::normal_distribution<float> nd(0.0f, std::sqrt(2.0f / static_cast<float>(in)));
    m.w[l].resize(out, in);
    for (std::int64_t i = 0; i < m.w[l].size(); ++i) m.w[l].data()[i] = nd(rng);
    m.b[l] = vectorf::Zero(out);
  }
  return m;
}

void save_model(const mlp& m, const std::string& path,
                const std::vector<std::pair<std::string, std::string>>& metadata) {
  lowbit::io::safetensors_writer wr;
  wr.set_metadata("format", "pt");
  wr.set_metadata("architecture", kArch);
  wr.set_metadata("normalization", kNormalization);
  for (const auto& kv : metadata) wr.set_metadata(kv.first, kv.second);
  for (int l = 0; l < kLayers; ++l) {
    wr.add(weight_name(l), {m.w[l].rows(), m.w[l].cols()},
           lowbit::span<const float>(m.w[l].data(), static_cast<std::size_t>(m.w[l].size())));
    wr.add(bias_name(l), {m.b[l].size()},
           lowbit::span<const float>(m.b[l].data(), static_cast<std::size_t>(m.b[l].size())));
  }
  fs::create_directories(fs::path(path).parent_path());
  wr.save(path);
}

/// Loads and validates a model file. Throws with a message naming the file.
mlp load_model(const std::string& path, std::map<std::string, std::string>& metadata) {
  const lowbit::io::safetensors_file f(path);
  metadata = f.metadata();
  mlp m;
  auto get = [&](const std::string& name, std::vector<std::int64_t> shape) {
    if (!f.contains(name))
      throw std::runtime_error(path + ": missing tensor '" + name + "' (expected " + kArch + ")");
    const auto& info = f.info(name);
    if (info.shape != shape) {
      std::string s;
      for (auto d : info.shape) s += (s.empty() ? "" : ", ") + std::to_string(d);
      std::string e;
      for (auto d : shape) e += (e.empty() ? "" : ", ") + std::to_string(d);
      throw std::runtime_error(path + ": tensor '" + name + "' has shape [" + s + "], expected [" +
                               e + "]");
    }
    if (info.dtype != "F32")
      throw std::runtime_error(path + ": tensor '" + name + "' has dtype " + info.dtype +
                               ", expected F32");
    std::vector<float> v = f.to_f32(name);
    for (std::size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i]))
        throw std::runtime_error(path + ": tensor '" + name + "' element " + std::to_string(i) +
                                 " is not finite");
    return v;
  };
  for (int l = 0; l < kLayers; ++l) {
    const std::int64_t in = kDims[static_cast<std::size_t>(l)];
    const std::int64_t out = kDims[static_cast<std::size_t>(l) + 1];
    const std::vector<float> w = get(weight_name(l), {out, in});
    const std::vector<float> b = get(bias_name(l), {out});
    m.w[l] = Eigen::Map<const matrixf>(w.data(), out, in);
    m.b[l] = Eigen::Map<const vectorf>(b.data(), out);
  }
  if (f.size() != 2 * kLayers)
    throw std::runtime_error(path + ": " + std::to_string(f.size()) + " tensors, expected " +
                             std::to_string(2 * kLayers) + " (" + kArch + ")");
  return m;
}

// ---- training ------------------------------------------------------------------------

struct train_options {
  int epochs = 10;
  int batch = 128;
  double lr = 1e-3;
  std::uint32_t seed = 42;
  std::int64_t qat_group = 0;  ///< > 0: fake-quantize the weights int4 per group (QAT)
  std::string label = "train";
};

/// Fake quantization of one weight matrix for QAT: int4 symmetric per group with the
/// parameters weight_spec::int4(per_group{g}) chooses (min-max), on the weights
/// zero-padded to whole groups exactly as quantized_linear pads them.
struct weight_fake_quant {
  lowbit::weight_spec spec;
  matrixf padded;               ///< [out x padded_k] float weights
  lowbit::quant_params params;  ///< over `padded`
  matrixf wq;                   ///< fake-quantized [out x in], used by the forward pass

  void forward(const matrixf& w) {
    const std::int64_t n = w.rows(), k = w.cols(), kp = spec.padded_k(k);
    padded = matrixf::Zero(n, kp);
    padded.leftCols(k) = w;
    params = spec.quantize(lowbit::view(padded)).params;  // the converter's own choice
    matrixf fq(n, kp);
    lowbit::fake_quantize(lowbit::view(padded), params,
                          lowbit::tensor_view<float>(fq.data(), {n, kp}));
    wq = fq.leftCols(k);
  }
  /// d loss / d w from d loss / d wq by the straight-through estimator.
  void backward(const matrixf& grad_wq, matrixf& grad_w) const {
    const std::int64_t n = grad_wq.rows(), k = grad_wq.cols(), kp = padded.cols();
    matrixf g = matrixf::Zero(n, kp);
    g.leftCols(k) = grad_wq;
    const lowbit::tensor_view<float> gv(g.data(), {n, kp});
    lowbit::fake_quantize_backward(lowbit::view(padded), params, lowbit::view(g), gv);
    grad_w = g.leftCols(k);
  }
};

struct adam {
  std::array<matrixf, kLayers> mw, vw;
  std::array<vectorf, kLayers> mb, vb;
  long t = 0;
  explicit adam(const mlp& m) {
    for (int l = 0; l < kLayers; ++l) {
      mw[l] = vw[l] = matrixf::Zero(m.w[l].rows(), m.w[l].cols());
      mb[l] = vb[l] = vectorf::Zero(m.b[l].size());
    }
  }
  void step(mlp& m, const std::array<matrixf, kLayers>& gw, const std::array<vectorf, kLayers>& gb,
            float lr) {
    constexpr float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    ++t;
    const float c1 = 1.0f - std::pow(b1, static_cast<float>(t));
    const float c2 = 1.0f - std::pow(b2, static_cast<float>(t));
    const float a = lr * std::sqrt(c2) / c1;
    for (int l = 0; l < kLayers; ++l) {
      mw[l] = b1 * mw[l] + (1 - b1) * gw[l];
      vw[l] = b2 * vw[l] + (1 - b2) * gw[l].cwiseProduct(gw[l]);
      m.w[l].array() -= a * mw[l].array() / (vw[l].array().sqrt() + eps);
      mb[l] = b1 * mb[l] + (1 - b1) * gb[l];
      vb[l] = b2 * vb[l] + (1 - b2) * gb[l].cwiseProduct(gb[l]);
      m.b[l].array() -= a * mb[l].array() / (vb[l].array().sqrt() + eps);
    }
  }
};

/// Mini-batch Adam on softmax cross-entropy; returns the last epoch's mean loss.
double train(mlp& m, const dataset& d, const train_options& o) {
  const std::int64_t n = d.size();
  const std::int64_t steps_per_epoch = (n + o.batch - 1) / o.batch;
  const long total_steps = static_cast<long>(steps_per_epoch) * o.epochs;
  std::mt19937 rng(o.seed);
  std::vector<std::int64_t> order(static_cast<std::size_t>(n));
  adam opt(m);
  std::array<weight_fake_quant, kLayers> fq;
  for (auto& f : fq) f.spec = lowbit::weight_spec::int4(lowbit::per_group{o.qat_group});
  std::array<matrixf, kLayers> gw, gwq;
  std::array<vectorf, kLayers> gb;
  std::array<matrixf, kLayers + 1> act;  // act[0] = x, act[l + 1] = layer l output (post-ReLU)
  std::array<matrixf, kLayers> delta;    // d loss / d pre-activation
  double epoch_loss = 0;
  long step = 0;
  for (int e = 0; e < o.epochs; ++e) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::fflush(stdout);
    example::progress bar(
        o.label + " epoch " + std::to_string(e + 1) + "/" + std::to_string(o.epochs),
        static_cast<long>(steps_per_epoch));
    double loss_sum = 0;
    std::int64_t correct = 0, seen = 0;
    for (std::int64_t s = 0; s < steps_per_epoch; ++s, ++step) {
      const std::int64_t begin = s * o.batch;
      const std::int64_t bs = std::min<std::int64_t>(o.batch, n - begin);
      matrixf& x = act[0];
      x.resize(bs, kDims[0]);
      for (std::int64_t r = 0; r < bs; ++r) {
        const std::uint8_t* p = d.images.image(order[static_cast<std::size_t>(begin + r)]);
        for (std::int64_t c = 0; c < kDims[0]; ++c) x(r, c) = static_cast<float>(p[c]) / 255.0f;
      }
      // forward (QAT: with fake-quantized weights)
      std::array<const matrixf*, kLayers> w{};
      for (int l = 0; l < kLayers; ++l) {
        if (o.qat_group > 0) {
          fq[l].forward(m.w[l]);
          w[l] = &fq[l].wq;
        } else {
          w[l] = &m.w[l];
        }
        act[l + 1].noalias() = act[l] * w[l]->transpose();
        act[l + 1].rowwise() += m.b[l].transpose();
        if (l + 1 < kLayers) act[l + 1] = act[l + 1].cwiseMax(0.0f);
      }
      // softmax cross-entropy; delta = (softmax - onehot) / batch
      matrixf& z = act[kLayers];
      delta[kLayers - 1].resize(bs, kDims[kLayers]);
      for (std::int64_t r = 0; r < bs; ++r) {
        const int y =
            d.labels[static_cast<std::size_t>(order[static_cast<std::size_t>(begin + r)])];
        Eigen::Index arg = 0;
        const float mx = z.row(r).maxCoeff(&arg);
        correct += arg == y;
        const auto ex = (z.row(r).array() - mx).exp();
        const float sum = ex.sum();
        loss_sum += std::log(sum) - (z(r, y) - mx);
        delta[kLayers - 1].row(r) = ex / sum;
        delta[kLayers - 1](r, y) -= 1.0f;
      }
      delta[kLayers - 1] /= static_cast<float>(bs);
      seen += bs;
      // backward
      for (int l = kLayers - 1; l >= 0; --l) {
        matrixf& g = o.qat_group > 0 ? gwq[l] : gw[l];
        g.noalias() = delta[l].transpose() * act[l];
        gb[l] = delta[l].colwise().sum().transpose();
        if (l > 0) {
          delta[l - 1].noalias() = delta[l] * *w[l];
          delta[l - 1] = (act[l].array() > 0.0f).select(delta[l - 1], 0.0f);
        }
        if (o.qat_group > 0) fq[l].backward(gwq[l], gw[l]);  // STE
      }
      const double pi = 3.14159265358979323846;
      const float lr = static_cast<float>(
          o.lr * 0.5 * (1.0 + std::cos(pi * static_cast<double>(step) / total_steps)));
      opt.step(m, gw, gb, lr);
      if ((s + 1) % std::max<std::int64_t>(1, steps_per_epoch / 50) == 0)
        bar.update(static_cast<long>(s + 1),
                   example::fmt("loss %.4f", loss_sum / static_cast<double>(seen)) +
                       example::fmt(", train acc %.2f %%", 100.0 * correct / seen));
    }
    epoch_loss = loss_sum / static_cast<double>(seen);
    bar.finish(example::fmt("loss %.4f", epoch_loss) +
               example::fmt(", train acc %.2f %%", 100.0 * correct / seen));
  }
  return epoch_loss;
}

// ---- evaluation ----------------------------------------------------------------------

double accuracy(const std::function<matrixf(const matrixf&)>& f, const matrixf& x,
                const std::vector<std::uint8_t>& labels) {
  std::int64_t correct = 0;
  const std::int64_t n = x.rows(), chunk = 1000;
  for (std::int64_t b = 0; b < n; b += chunk) {
    const std::int64_t m = std::min(chunk, n - b);
    const matrixf y = f(x.middleRows(b, m));
    for (std::int64_t r = 0; r < m; ++r) {
      Eigen::Index arg = 0;
      y.row(r).maxCoeff(&arg);
      correct += arg == labels[static_cast<std::size_t>(b + r)];
    }
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

/// The float range a per-tensor uint8/int8 parameter set represents.
std::string range_of(const lowbit::quant_params& p) {
  const double s = p.scales[0];
  const double z = p.zero_points[0];
  return example::fmt("[%.3g, ", (p.quant_min - z) * s) +
         example::fmt("%.3g]", (p.quant_max - z) * s);
}

/// Calibrated activation ranges of a static model: input -> layer outputs.
std::string ranges(const lowbit::sequential& m) {
  std::string s = "calibrated ranges";
  bool first = true;
  for (const auto& l : m.layers())
    if (const auto* q = std::get_if<lowbit::quantized_linear>(&l)) {
      if (first) s += " in " + range_of(q->input_params());
      first = false;
      s += " -> " + (q->output_params() ? range_of(*q->output_params()) : std::string("f32"));
    }
  return s;
}

enum class family { fp32, int8, int4_ptq, qat };

struct row_spec {
  std::string name;
  family fam;
  std::optional<lowbit::quantization_config> cfg;  ///< none: FP32
  bool use_qat_model = false;
};

struct row_result {
  row_spec spec;
  double acc = 0;
  std::size_t bytes = 0;
  double lat1 = 0, lat_big = 0;  ///< seconds
  std::string model;             ///< sequential::describe()
  double quantize_s = 0, eval_s = 0;
};

double target_pp(family f) {
  switch (f) {
    case family::int8:
      return 0.3;
    case family::int4_ptq:
      return 1.0;
    case family::qat:
      return 0.5;
    case family::fp32:
      break;
  }
  return 0;
}

int run(int argc, char** argv) {
  const double t_start = example::now_s();
  example::flags fl(argc, argv, kUsage);
  if (fl.help()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const fs::path data_dir = fl.str("data", "/usr/share/datasets/fashion-mnist");
  const fs::path out_dir = fl.str("out", "lowbit-results");
  const fs::path cache_dir = fl.str("cache", (out_dir / "cache").string());
  const bool retrain = fl.flag("retrain");
  train_options fp;
  fp.epochs = static_cast<int>(positive_flag(fl, "epochs", 10));
  fp.batch = static_cast<int>(positive_flag(fl, "batch", 128));
  fp.lr = real_flag(fl, "lr", 1e-3);
  fp.seed = static_cast<std::uint32_t>(positive_flag(fl, "seed", 42, 0));
  fp.label = "fp32";
  train_options qo = fp;
  qo.epochs = static_cast<int>(positive_flag(fl, "qat-epochs", 1));
  qo.lr = real_flag(fl, "qat-lr", 1e-4);
  qo.seed = fp.seed + 1;
  qo.label = "qat";
  const std::int64_t group = positive_flag(fl, "group", 128);
  qo.qat_group = group;
  const std::int64_t calib_n = positive_flag(fl, "calib", 1000);
  const std::int64_t train_limit = positive_flag(fl, "train-limit", 0, 0);
  const std::int64_t test_limit = positive_flag(fl, "test-limit", 0, 0);
  const int threads = static_cast<int>(positive_flag(fl, "threads", 1));
  const int reps = static_cast<int>(positive_flag(fl, "reps", 300));
  const std::int64_t lat_batch = positive_flag(fl, "latency-batch", 256);
  fl.finish();
  if (group % 32 != 0)
    throw std::runtime_error("--group must be a multiple of 32, got " + std::to_string(group));
  if (fp.lr <= 0 || qo.lr <= 0) throw std::runtime_error("--lr and --qat-lr must be > 0");

  std::printf("# Fashion-MNIST: FP32 vs INT8 vs INT4 vs QAT INT4\n\n");
  std::printf("lowbit %s; CPU: %s\n", LOWBIT_VERSION_STRING, lowbit::describe_cpu().c_str());
  const std::string fp32_name = example::use_native_fp32();
  std::printf("ISA: %s (integer kernels; LOWBIT_MAX_ISA caps it); FP32 rows: %s\n",
              lowbit::to_string(lowbit::best_isa()), fp32_name.c_str());
  std::printf("gemm kernels: %s\n", example::gemm_kernels_line().c_str());
  std::printf("threads: %d (lowbit GEMM and FP32 rows); training: Eigen, single-threaded\n",
              threads);

  // ---- data -------------------------------------------------------------------------
  if (!fs::is_directory(data_dir))
    throw std::runtime_error("data directory '" + data_dir.string() +
                             "' not found: install the Debian package dataset-fashion-mnist "
                             "(cmake/install_deps.sh does) or pass --data DIR with "
                             "train-/t10k-{images-idx3,labels-idx1}-ubyte.gz");
  const dataset test = load_split(data_dir, "t10k", test_limit);
  const std::string fp32_path = (cache_dir / "fashion_mnist_mlp.safetensors").string();
  const std::string qat_path =
      (cache_dir / ("fashion_mnist_mlp_qat_int4_g" + std::to_string(group) + ".safetensors"))
          .string();

  // The training set is read lazily: a cached run needs only the calibration images.
  std::optional<dataset> train_set;
  std::int64_t train_count = 0;  // images the training uses (known from the header)
  auto full_train = [&]() -> const dataset& {
    if (!train_set) train_set = load_split(data_dir, "train", train_limit);
    return *train_set;
  };
  {
    // How many training images the training uses (the cache key): the 60 KB label file only.
    const auto probe = example::idx::read_labels((data_dir / "train-labels-idx1-ubyte.gz").string(),
                                                 train_limit, 10);
    train_count = static_cast<std::int64_t>(probe.size());
  }
  auto train_key = [&](const train_options& o, std::int64_t count) {
    return std::string(kArch) + "; adam lr " + fmt_real(o.lr) + " cosine; batch " +
           std::to_string(o.batch) + "; epochs " + std::to_string(o.epochs) + "; seed " +
           std::to_string(o.seed) + "; train images " + std::to_string(count) +
           (o.qat_group > 0 ? "; qat int4 weight-only per_group " + std::to_string(o.qat_group) +
                                  " symmetric min-max, STE"
                            : "") +
           "; " + kNormalization;
  };

  std::printf("data: %s (%lld training images used, %lld test images)\n", data_dir.string().c_str(),
              static_cast<long long>(train_count), static_cast<long long>(test.size()));
  std::printf("normalization: %s\n", kNormalization);

  // ---- FP32 model -------------------------------------------------------------------
  double t_train = 0, t_qat = 0;
  const std::string fp32_key = train_key(fp, train_count);
  std::optional<mlp> fp32;
  if (!retrain && fs::exists(fp32_path)) {
    std::map<std::string, std::string> meta;
    try {
      mlp m = load_model(fp32_path, meta);
      if (meta["train_config"] == fp32_key) {
        fp32 = std::move(m);
        std::printf("fp32 model: cached %s\n", fp32_path.c_str());
      } else {
        std::printf("fp32 model: cached %s was trained with a different config (%s): retraining\n",
                    fp32_path.c_str(), meta["train_config"].c_str());
      }
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("cached model is unusable: ") + e.what() +
                               " (delete it or run with --retrain)");
    }
  }
  if (!fp32) {
    std::printf("fp32 model: training (%s)\n", fp32_key.c_str());
    std::fflush(stdout);
    const double t0 = example::now_s();
    const dataset& tr = full_train();
    mlp m = he_init(fp.seed);
    const double loss = train(m, tr, fp);
    t_train = example::now_s() - t0;
    save_model(m, fp32_path,
               {{"train_config", fp32_key},
                {"final_epoch_loss", fmt_real(loss)},
                {"train_seconds", example::fmt("%.1f", t_train)}});
    std::printf("fp32 model: trained in %.1f s, saved %s\n", t_train, fp32_path.c_str());
    fp32 = std::move(m);
  }

  // ---- QAT model (keyed by the FP32 weights) -------------------------------------------
  const std::string qat_key = train_key(qo, train_count) + "; from fp32 " + fp32->fingerprint();
  std::optional<mlp> qat;
  if (!retrain && fs::exists(qat_path)) {
    std::map<std::string, std::string> meta;
    try {
      mlp m = load_model(qat_path, meta);
      if (meta["train_config"] == qat_key) {
        qat = std::move(m);
        std::printf("qat model: cached %s\n", qat_path.c_str());
      } else {
        std::printf("qat model: cached %s belongs to another FP32 model or config: redoing QAT\n",
                    qat_path.c_str());
      }
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string("cached QAT model is unusable: ") + e.what() +
                               " (delete it or run with --retrain)");
    }
  }
  if (!qat) {
    std::printf("qat model: fine-tuning (%s)\n", qat_key.c_str());
    std::fflush(stdout);
    const double t0 = example::now_s();
    const dataset& tr = full_train();
    mlp m = *fp32;
    const double loss = train(m, tr, qo);
    t_qat = example::now_s() - t0;
    save_model(m, qat_path,
               {{"train_config", qat_key},
                {"final_epoch_loss", fmt_real(loss)},
                {"train_seconds", example::fmt("%.1f", t_qat)}});
    std::printf("qat model: fine-tuned in %.1f s, saved %s\n", t_qat, qat_path.c_str());
    qat = std::move(m);
  }

  // ---- calibration batches: the first calib_n training images, 100 per batch ------------
  if (!train_set) train_set = load_split(data_dir, "train", std::min(calib_n, train_count));
  const std::int64_t nc = std::min(calib_n, train_set->size());
  std::vector<matrixf> calib;
  for (std::int64_t b = 0; b < nc; b += 100)
    calib.push_back(to_float(*train_set, b, std::min<std::int64_t>(100, nc - b)));

  // ---- rows ---------------------------------------------------------------------------
  using lowbit::calibrator;
  using lowbit::quantization_config;
  const std::string g = "g" + std::to_string(group);
  const lowbit::weight_spec int4_minmax = lowbit::weight_spec::int4(lowbit::per_group{group});
  lowbit::weight_spec int4_mse = int4_minmax;
  int4_mse.with_mse();
  std::vector<row_spec> specs = {
      {"FP32", family::fp32, std::nullopt},
      {"INT8 dynamic", family::int8, quantization_config::dynamic_int8()},
      {"INT8 static min-max", family::int8, quantization_config::static_int8(calibrator::minmax)},
      {"INT8 static percentile", family::int8,
       quantization_config::static_int8(calibrator::percentile)},
      {"INT8 static histogram-L2", family::int8,
       quantization_config::static_int8(calibrator::histogram)},
      {"INT8 static entropy-KL", family::int8,
       quantization_config::static_int8(calibrator::entropy)},
      {"INT4 weight-only " + g, family::int4_ptq, quantization_config::weight_only(int4_minmax)},
      {"INT4 weight-only " + g + " MSE", family::int4_ptq,
       quantization_config::weight_only(int4_mse)},
      {"W4A8 " + g, family::int4_ptq, quantization_config::w4a8(int4_minmax)},
      {"W4A8 " + g + " MSE", family::int4_ptq, quantization_config::w4a8(int4_mse)},
      {"QAT INT4 weight-only " + g, family::qat, quantization_config::weight_only(int4_minmax),
       true},
      {"QAT W4A8 " + g, family::qat, quantization_config::w4a8(int4_minmax), true},
  };

  std::printf("calibration: first %lld training images, %zu batches of <= 100 (static INT8)\n",
              static_cast<long long>(nc), calib.size());
  const matrixf xtest = to_float(test, 0, test.size());
  const matrixf x1 = xtest.topRows(1);
  const matrixf xbig = xtest.topRows(std::min<std::int64_t>(lat_batch, xtest.rows()));
  std::printf(
      "latency: median of %d runs (batch 1) and %d runs (batch %lld), after a warm-up run\n\n",
      reps, std::max(3, reps / 10), static_cast<long long>(xbig.rows()));
  const lowbit::gemm_context ctx{threads};
  const lowbit::sequential fp32_seq = fp32->to_sequential();
  const lowbit::sequential qat_seq = qat->to_sequential();

  const double t_eval0 = example::now_s();
  std::vector<row_result> results;
  std::fflush(stdout);
  example::progress bar("quantize + evaluate", static_cast<long>(specs.size()));
  volatile float sink = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const row_spec& s = specs[i];
    bar.update(static_cast<long>(i), s.name);
    const lowbit::sequential& base = s.use_qat_model ? qat_seq : fp32_seq;
    const double tq0 = example::now_s();
    lowbit::sequential model =
        s.cfg ? base.quantize(*s.cfg, s.cfg->mode == lowbit::linear_mode::static_w8a8
                                          ? calib
                                          : std::vector<matrixf>{})
              : base;
    row_result r;
    r.spec = s;
    r.quantize_s = example::now_s() - tq0;
    r.model = model.describe();
    if (s.cfg && s.cfg->mode == lowbit::linear_mode::static_w8a8) r.model += "; " + ranges(model);
    r.bytes = model.memory_bytes();
    const double te0 = example::now_s();
    r.acc = accuracy([&](const matrixf& x) { return model(x, ctx); }, xtest, test.labels);
    r.eval_s = example::now_s() - te0;
    r.lat1 = example::median_time(reps, [&] { sink = sink + model(x1, ctx)(0, 0); });
    r.lat_big =
        example::median_time(std::max(3, reps / 10), [&] { sink = sink + model(xbig, ctx)(0, 0); });
    results.push_back(std::move(r));
  }
  bar.finish("done");
  const double t_eval = example::now_s() - t_eval0;

  // QAT check: the float model with fake-quantized weights (what QAT trained) vs the
  // converted int4 model run by lowbit's kernels.
  double qat_fake_acc = 0;
  {
    mlp fq = *qat;
    for (int l = 0; l < kLayers; ++l) {
      weight_fake_quant f;
      f.spec = int4_minmax;
      f.forward(fq.w[l]);
      fq.w[l] = f.wq;
    }
    const lowbit::sequential s = fq.to_sequential();
    qat_fake_acc = accuracy([&](const matrixf& x) { return s(x); }, xtest, test.labels);
  }

  // ---- report -------------------------------------------------------------------------
  const double acc32 = results[0].acc;
  example::table t({"model", "test accuracy", "drop vs FP32 (pp)", "target (drop)", "model bytes",
                    "latency b=1 (us)", "latency b=" + std::to_string(xbig.rows()) + " (ms)"});
  struct tally {
    int met = 0, total = 0;
    std::string missed;
  };
  std::map<family, tally> tallies;
  bool sane = acc32 > 0.15;
  std::string insane;
  if (!sane) insane += " fp32 accuracy <= 0.15;";
  for (const auto& r : results) {
    const double drop = 100.0 * (acc32 - r.acc);
    std::string target = "reference";
    if (r.spec.fam != family::fp32) {
      const double tp = target_pp(r.spec.fam);
      const bool met = drop <= tp + 1e-9;
      target = "<= " + example::fmt("%.1f", tp) + " pp: " + (met ? "met" : "MISSED");
      tally& ty = tallies[r.spec.fam];
      ++ty.total;
      ty.met += met;
      if (!met)
        ty.missed +=
            (ty.missed.empty() ? "" : ", ") + r.spec.name + " " + example::fmt("%.2f pp", drop);
      // Sanity (a kernel or plumbing bug, not a calibration choice): every INT8 row within
      // 10 pp of FP32, except entropy-KL, which clips by design: on this MLP it cuts the first
      // hidden layer's ReLU outputs (about 60 % zeros) to ~12 % of their maximum, costing
      // 2.7 pp on the full model and 5-12 pp on the barely trained smoke-test models.
      const bool clips_by_design = r.spec.cfg &&
                                   r.spec.cfg->mode == lowbit::linear_mode::static_w8a8 &&
                                   r.spec.cfg->calib == lowbit::calibrator::entropy;
      if (r.spec.fam == family::int8 && !clips_by_design && drop > 10.0) {
        sane = false;
        insane += " " + r.spec.name + " is " + example::fmt("%.2f", drop) + " pp below FP32;";
      }
    }
    t.row({r.spec.name, example::fmt("%.2f %%", 100.0 * r.acc),
           r.spec.fam == family::fp32 ? "-" : example::fmt("%.2f", drop), target,
           std::to_string(r.bytes), example::fmt("%.1f", r.lat1 * 1e6),
           example::fmt("%.3f", r.lat_big * 1e3)});
  }

  double qat_int_acc = 0;
  for (const auto& r : results)
    if (r.spec.fam == family::qat && r.spec.cfg->mode == lowbit::linear_mode::weight_only)
      qat_int_acc = r.acc;
  std::string config;
  config += "- FP32 model: " + fp32_key + " (" + fp32_path + ")\n";
  config += "- QAT model: " + qat_key + " (" + qat_path + ")\n";
  config += "- test images: " + std::to_string(test.size()) + "; calibration: first " +
            std::to_string(nc) + " training images in " + std::to_string(calib.size()) +
            " batches; INT4 group size " + std::to_string(group) + " (784 inputs zero-padded to " +
            std::to_string(int4_minmax.padded_k(784)) + ")\n";
  config += "- ISA " + std::string(lowbit::to_string(lowbit::best_isa())) + " (gemm " +
            example::gemm_kernels_line() + "); FP32 rows: " + fp32_name + "; lowbit GEMM threads " +
            std::to_string(threads) + ", latency = median wall time of one forward pass\n";
  config += "- models as run:\n";
  for (const auto& r : results)
    config += "  - " + r.spec.name + ": " + r.model +
              example::fmt(" (quantize %.2f s", r.quantize_s) +
              example::fmt(", evaluate %.2f s)", r.eval_s) + "\n";
  config += "- QAT check: the float model with fake-quantized weights scores " +
            example::fmt("%.2f %%", 100.0 * qat_fake_acc) + ", the converted INT4 model " +
            example::fmt("%.2f %%", 100.0 * qat_int_acc) + " (lowbit's int4 kernels)\n";
  auto verdict = [&](family f, const char* what) {
    const tally& ty = tallies[f];
    std::string v = std::string(what) + ": " + (ty.met == ty.total ? "met" : "MISSED") + " (" +
                    std::to_string(ty.met) + " of " + std::to_string(ty.total) + " rows";
    return v + (ty.missed.empty() ? "" : "; missed: " + ty.missed) + ")";
  };
  const std::string targets = "Targets: " + verdict(family::int8, "INT8 drop <= 0.3 pp") + "; " +
                              verdict(family::int4_ptq, "INT4 per-group PTQ drop <= 1.0 pp") +
                              "; " + verdict(family::qat, "QAT INT4 drop <= 0.5 pp") + ".\n";

  const std::string md = "# Fashion-MNIST, " + std::string(kArch) + "\n\n" + t.markdown() + "\n" +
                         targets + "\n" + config;
  std::printf("%s\n%s\n%s", t.markdown().c_str(), targets.c_str(), config.c_str());

  std::vector<example::bar> bars;
  for (const auto& r : results) {
    const char* color = r.spec.fam == family::fp32   ? "#54A24B"
                        : r.spec.fam == family::int8 ? "#4C78A8"
                        : r.spec.fam == family::qat  ? "#B279A2"
                                                     : "#F58518";
    bars.push_back({r.spec.name, 100.0 * r.acc, color});
  }
  bars.push_back({"target INT8 (FP32 - 0.3 pp)", 100.0 * acc32 - 0.3, "#BBBBBB"});
  bars.push_back({"target QAT INT4 (FP32 - 0.5)", 100.0 * acc32 - 0.5, "#BBBBBB"});
  bars.push_back({"target INT4 PTQ (FP32 - 1.0)", 100.0 * acc32 - 1.0, "#BBBBBB"});
  const std::string title = "Fashion-MNIST test accuracy, " + std::string(kArch) + " (" +
                            std::to_string(test.size()) + " images)";
  example::write_file(out_dir / "fashion_mnist.md", md);
  example::write_file(out_dir / "fashion_mnist_accuracy.svg",
                      example::svg_bar_chart(title, "%", bars));
  std::printf("\nwrote %s and %s\n", (out_dir / "fashion_mnist.md").string().c_str(),
              (out_dir / "fashion_mnist_accuracy.svg").string().c_str());
  std::printf(
      "time: %.1f s total (fp32 training %.1f s%s, QAT %.1f s%s, quantize + evaluate %.1f s)\n",
      example::now_s() - t_start, t_train, t_train == 0 ? " (cached)" : "", t_qat,
      t_qat == 0 ? " (cached)" : "", t_eval);
  std::printf("fashion_mnist: fp32 accuracy %.4f (above chance: %s)\n", acc32,
              acc32 > 0.15 ? "yes" : "no");
  if (!sane) {
    std::printf("fashion_mnist: sanity check FAILED:%s\n", insane.c_str());
    return 1;
  }
  std::printf("fashion_mnist: sanity checks passed\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "\nfashion_mnist: error: %s\n", e.what());
    return 2;
  }
}
