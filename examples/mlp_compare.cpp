// SPDX-License-Identifier: Apache-2.0
// mlp_compare: the MLP of the PyTorch quantization article, FP32 vs every lowbit mode.
//
//   nn.Sequential(Linear(768, 512), ReLU, Linear(512, 314), ReLU,
//                 Linear(314, 128), ReLU, Linear(128, 64), Sigmoid)
//
// Rows: FP32 (OpenBLAS or Eigen built for this machine: support/fp32_native.hpp), dynamic
// INT8, dynamic INT8 PyTorch-compatible, static INT8 calibrated with min-max and with
// histogram observers, W4A8 per group, weight-only INT4.
// Columns: model bytes, max / mean abs error vs FP32 on the evaluation batch (4 rows),
// median latency per batch at batch 4 and 256, speedup vs FP32 at the same batch.
// Writes <out>/mlp_compare.md, <out>/mlp_latency.svg and <out>/mlp_error.svg.
//
// Deterministic data (reproducible on every platform with IEEE float; std::mt19937 is
// fully specified by the standard, the distributions below are written out here because
// std::uniform_real_distribution / std::normal_distribution are not):
//   weights      PyTorch nn.Linear's default init: kaiming_uniform_(a = sqrt(5)) gives
//                U(-1/sqrt(in), 1/sqrt(in)) for the weight, and the bias is drawn from the
//                same U(-1/sqrt(in), 1/sqrt(in)). One std::mt19937(seed) stream, layer by
//                layer, weight [out x in] row-major then bias; a uniform is
//                lo + (hi - lo) * (u32 >> 8) * 2^-24.  (Same distribution as PyTorch, not
//                the same numbers: feed PyTorch's own weights with --weights for that.)
//   input        batch 4 from N(0, 1): std::mt19937(seed + 1), Box-Muller in double
//                (u1 = (u32 + 1) / (2^32 + 1), u2 = u32 / 2^32, both outputs used).
//   calibration  16 batches of 32 from N(0, 1), std::mt19937(seed + 2): held apart from the
//                evaluation input.
//   timing       batches of 4 and 256 from N(0, 1), std::mt19937(seed + 3).
//
// Weights from PyTorch (the tensor names are the state_dict keys of the nn.Sequential
// above: 0.weight 0.bias 2.weight 2.bias 4.weight 4.bias 6.weight 6.bias; the names
// fc1.weight fc1.bias .. fc4.weight fc4.bias of a module with attributes fc1..fc4 are
// accepted too). Shapes [out, in] for weights, [out] for biases; F32, F16, BF16 or F64:
//
//   import torch, torch.nn as nn, numpy as np, os
//   torch.manual_seed(0)
//   model = nn.Sequential(nn.Linear(768, 512), nn.ReLU(), nn.Linear(512, 314), nn.ReLU(),
//                         nn.Linear(314, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())
//   from safetensors.torch import save_file               # pip install safetensors
//   save_file(model.state_dict(), "mlp.safetensors")      # --weights mlp.safetensors
//   os.makedirs("mlp_npy", exist_ok=True)                 # or one .npy per tensor:
//   for k, v in model.state_dict().items():               # --weights mlp_npy
//       np.save(f"mlp_npy/{k}.npy", v.numpy())
//   x = torch.randn(4, 768); np.save("x.npy", x.numpy())  # --input x.npy
//   # reference outputs to compare with --save-outputs DIR (fp32.npy, dynamic_int8_pt.npy):
//   y = model(x)
//   yq = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)(x)
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <lowbit/io/npy.hpp>
#include <lowbit/io/safetensors.hpp>
#include <lowbit/lowbit.hpp>

#include "support/fp32_native.hpp"
#include "support/report.hpp"

namespace {

namespace fs = std::filesystem;
using lowbit::matrixf;
using lowbit::vectorf;

constexpr int kLayers = 4;
constexpr std::array<std::int64_t, kLayers + 1> kDims = {768, 512, 314, 128, 64};
// Sanity bounds (see "Checks" in the usage text). Outputs are sigmoids in [0, 1].
constexpr double kFp32Bound = 1e-4;     ///< FP32 vs the float64 reference
constexpr double kInt8Bound = 0.05;     ///< INT8 rows: max abs error (--tolerance)
constexpr double kInt8RelBound = 0.10;  ///< INT8 rows: mean abs error / FP32 spread
constexpr double kInt4Bound = 0.10;     ///< INT4 rows: max abs error
constexpr double kInt4RelBound = 0.50;  ///< INT4 rows: mean abs error / FP32 spread

const char* const kUsage = R"(usage: mlp_compare [options]

The MLP of the PyTorch quantization article,
  nn.Sequential(Linear(768, 512), ReLU, Linear(512, 314), ReLU,
                Linear(314, 128), ReLU, Linear(128, 64), Sigmoid),
in FP32 (OpenBLAS, else Eigen built for this machine) and every lowbit mode: dynamic INT8,
dynamic INT8 PyTorch-compatible (quantize_dynamic's rule: per-tensor uint8 activations with reduce_range, per-tensor
int8 weights), static INT8 calibrated with min-max and histogram observers, W4A8 per
group and weight-only INT4. Prints a Markdown table (model bytes, max / mean abs error
vs FP32, median latency per batch at batch 4 and 256, speedup vs FP32) and writes
<out>/mlp_compare.md, <out>/mlp_latency.svg and <out>/mlp_error.svg.

options:
  --weights PATH        float weights: a .safetensors file, or a directory of .npy files
                        named <tensor>.npy. Tensor names are the state_dict keys of the
                        nn.Sequential above: 0.weight [512,768] 0.bias [512] 2.weight
                        [314,512] 2.bias [314] 4.weight [128,314] 4.bias [128] 6.weight
                        [64,128] 6.bias [64]; or fc1.weight, fc1.bias .. fc4.weight,
                        fc4.bias with the same shapes. dtype F32/F16/BF16/F64 (.npy: <f4,
                        <f8). Default: PyTorch's default init, seeded (see --seed).
  --input FILE.npy      evaluation input [B, 768] (or [768]), <f4 or <f8.
                        Default: 4 rows from N(0, 1), seeded.
  --calib FILE.npy      calibration samples [N, 768] for the static rows, split in batches
                        of --calib-batch rows. Default: seeded N(0, 1) batches, held apart
                        from the evaluation input.
  --seed N              seed of every generated tensor (default 0): weights mt19937(N),
                        input N+1, calibration N+2, timing batches N+3
  --calib-batches N     calibration batches when generated (default 16)
  --calib-batch N       rows per calibration batch (default 32)
  --group G             INT4 group size, a multiple of 32 (default 128)
  --no-mse              INT4 weights with plain min-max scales (default: MSE-optimal clipping)
  --timing-batch N      the large timing batch (default 256); the small one is 4
  --reps N              timed runs per cell, median reported (default 0 = auto: about
                        0.15 s per cell, at least 5 runs)
  --threads N           threads for lowbit's GEMMs and the FP32 baseline (default 1). The
                        FP32 baseline is OpenBLAS when installed, else Eigen built with
                        -march=native (threaded only in builds with OpenMP).
  --tolerance X         max abs error bound of the INT8 rows (default 0.05, see Checks)
  --out DIR             output directory (default lowbit-results)
  --save-weights PATH   write the float weights in the names above (0.weight ..): a
                        .safetensors file if PATH ends in .safetensors, else a directory
                        of .npy files
  --save-input FILE.npy write the evaluation input
  --save-outputs DIR    write every row's output on the evaluation input as DIR/<row>.npy
                        (fp32, dynamic_int8, dynamic_int8_pt, static_int8_minmax,
                        static_int8_histogram, w4a8, weight_only_int4)
  --rows LIST           comma-separated rows to run (default all): dynamic_int8,
                        dynamic_int8_pt, static_int8_minmax, static_int8_histogram,
                        w4a8, weight_only_int4; the FP32 baseline always runs
  --verify-roundtrip    save the weights as .safetensors and as .npy (in --out), reload
                        both and check that weights and FP32 outputs are bit-identical
  -h, --help            this text

Checks (exit status 0 all passed, 1 a check failed, 2 bad usage or input):
  every row      outputs finite and in [0, 1] (they are sigmoids)
  FP32           max abs error vs a float64 evaluation of the same weights < 1e-4
  INT8 rows      max abs error vs FP32 < 0.05 (--tolerance): sigmoid' <= 1/4, so that
                 is a logit error of 0.2; and mean abs error < 10% of the FP32 spread
  INT4 rows      max abs error < 0.1 and mean abs error < 50% of the spread
The spread is mean |y - mean(y)| of the FP32 outputs. An untrained network's outputs sit
near sigmoid(0) = 0.5 (default init: spread ~0.01), so the absolute bound alone would
pass a constant 0.5; the relative bound would not (a constant has ~100%). Expected: INT8
keeps 255 levels per tensor/channel/row (~0.4% steps) and rounds 8 times (weights and
activations of 4 layers): ~1% of the spread; INT4 weights have 15 levels per group,
~16x coarser: ~10%. Both bounds leave a 5-10x margin.

Environment: LOWBIT_MAX_ISA=portable|avx2|avx_vnni|avx512_vnni|amx_int8 caps the ISA.

Export a PyTorch model (the tensor names above are what state_dict() gives):
  import torch, torch.nn as nn, numpy as np, os
  model = nn.Sequential(nn.Linear(768, 512), nn.ReLU(), nn.Linear(512, 314), nn.ReLU(),
                        nn.Linear(314, 128), nn.ReLU(), nn.Linear(128, 64), nn.Sigmoid())
  from safetensors.torch import save_file              # pip install safetensors
  save_file(model.state_dict(), "mlp.safetensors")     # --weights mlp.safetensors
  os.makedirs("mlp_npy", exist_ok=True)                # or: --weights mlp_npy
  for k, v in model.state_dict().items(): np.save(f"mlp_npy/{k}.npy", v.numpy())
  x = torch.randn(4, 768); np.save("x.npy", x.numpy()) # --input x.npy
)";

/// A clear, user-facing problem with the command line or the input files (exit 2).
struct input_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- deterministic data -------------------------------------------------------------
float uniform(std::mt19937& g, float lo, float hi) {
  const float u = static_cast<float>(g() >> 8) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
  return lo + (hi - lo) * u;
}

/// N(0, 1) by Box-Muller (both outputs used), rows x cols.
matrixf normal_matrix(std::int64_t rows, std::int64_t cols, std::uint32_t seed) {
  std::mt19937 g(seed);
  matrixf m(rows, cols);
  float* p = m.data();
  const std::int64_t n = rows * cols;
  constexpr double kTwoPi = 6.283185307179586;
  for (std::int64_t i = 0; i < n; i += 2) {
    const double u1 = (static_cast<double>(g()) + 1.0) / 4294967297.0;  // (0, 1)
    const double u2 = static_cast<double>(g()) / 4294967296.0;          // [0, 1)
    const double r = std::sqrt(-2.0 * std::log(u1));
    p[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    if (i + 1 < n) p[i + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
  }
  return m;
}

struct mlp_weights {
  std::array<matrixf, kLayers> w;  ///< [out x in], like nn.Linear.weight
  std::array<vectorf, kLayers> b;
  std::string source;
};

/// PyTorch's nn.Linear default init (see the file comment).
mlp_weights init_weights(std::uint32_t seed) {
  mlp_weights m;
  std::mt19937 g(seed);
  for (int l = 0; l < kLayers; ++l) {
    const std::int64_t in = kDims[l], out = kDims[l + 1];
    const float bound = 1.0f / std::sqrt(static_cast<float>(in));
    m.w[l].resize(out, in);
    for (std::int64_t i = 0; i < out * in; ++i) m.w[l].data()[i] = uniform(g, -bound, bound);
    m.b[l].resize(out);
    for (std::int64_t i = 0; i < out; ++i) m.b[l][i] = uniform(g, -bound, bound);
  }
  m.source =
      "PyTorch default nn.Linear init, U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, "
      "std::mt19937 seed " +
      std::to_string(seed);
  return m;
}

lowbit::sequential build_fp32(const mlp_weights& m) {
  lowbit::sequential s;
  for (int l = 0; l < kLayers; ++l) {
    s.linear(m.w[l], m.b[l]);
    s.add(l + 1 < kLayers ? lowbit::activation::relu : lowbit::activation::sigmoid);
  }
  return s;
}

/// The same network in float64 with plain loops: a check of the FP32 path.
matrixf reference_f64(const mlp_weights& m, const matrixf& x) {
  std::vector<double> cur(x.data(), x.data() + x.size());
  for (int l = 0; l < kLayers; ++l) {
    const std::int64_t in = kDims[l], out = kDims[l + 1];
    std::vector<double> next(static_cast<std::size_t>(x.rows() * out));
    for (std::int64_t r = 0; r < x.rows(); ++r)
      for (std::int64_t o = 0; o < out; ++o) {
        double s = m.b[l][o];
        for (std::int64_t i = 0; i < in; ++i)
          s += static_cast<double>(m.w[l](o, i)) * cur[static_cast<std::size_t>(r * in + i)];
        next[static_cast<std::size_t>(r * out + o)] =
            l + 1 < kLayers ? std::max(s, 0.0) : 1.0 / (1.0 + std::exp(-s));
      }
    cur = std::move(next);
  }
  matrixf y(x.rows(), kDims[kLayers]);
  for (std::int64_t i = 0; i < y.size(); ++i)
    y.data()[i] = static_cast<float>(cur[static_cast<std::size_t>(i)]);
  return y;
}

// ---- weight files -------------------------------------------------------------------
struct naming {
  const char* label;
  std::array<std::string, kLayers> prefix;
};
const naming kTorchNames{"nn.Sequential state_dict (0.weight ..)", {"0", "2", "4", "6"}};
const naming kFcNames{"fc1..fc4 (fc1.weight ..)", {"fc1", "fc2", "fc3", "fc4"}};

std::string shape_str(const std::vector<std::int64_t>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string expected_list(const naming& n) {
  std::string s;
  for (int l = 0; l < kLayers; ++l) {
    s += (l ? ", " : "") + n.prefix[l] + ".weight " + shape_str({kDims[l + 1], kDims[l]}) + ", " +
         n.prefix[l] + ".bias " + shape_str({kDims[l + 1]});
  }
  return s;
}

/// Checks a tensor's shape against layer l's weight (is_bias false) or bias.
void check_shape(const std::string& where, const std::string& name, int l, bool is_bias,
                 const std::vector<std::int64_t>& shape) {
  const std::int64_t in = kDims[l], out = kDims[l + 1];
  const std::vector<std::int64_t> want =
      is_bias ? std::vector<std::int64_t>{out} : std::vector<std::int64_t>{out, in};
  if (shape == want) return;
  std::string msg = where + ": tensor '" + name + "' has shape " + shape_str(shape) +
                    ", expected " + shape_str(want) + " (" +
                    (is_bias ? "[out_features]" : "[out_features, in_features]") + " of Linear(" +
                    std::to_string(in) + ", " + std::to_string(out) + "))";
  if (!is_bias && shape == std::vector<std::int64_t>{in, out})
    msg += "; it looks transposed: save nn.Linear.weight as it is, [out, in]";
  throw input_error(msg);
}

void check_finite(const std::string& where, const std::string& name, const float* p,
                  std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(p[i]))
      throw input_error(where + ": tensor '" + name + "' element " + std::to_string(i) + " is " +
                        (std::isnan(p[i]) ? "NaN" : "infinite"));
}

mlp_weights load_safetensors(const std::string& path) {
  const lowbit::io::safetensors_file f(path);  // throws on malformed files, with the offset
  const std::string where = "weights '" + path + "'";
  const naming* n = f.contains("0.weight")     ? &kTorchNames
                    : f.contains("fc1.weight") ? &kFcNames
                                               : nullptr;
  if (n == nullptr) {
    std::string found;
    const auto names = f.names();
    for (std::size_t i = 0; i < names.size() && i < 10; ++i) found += (i ? ", " : "") + names[i];
    if (names.size() > 10) found += ", ...";
    throw input_error(where + ": no tensor '0.weight' or 'fc1.weight'; found " +
                      std::to_string(names.size()) + " tensors (" + found +
                      "). Expected the state_dict of nn.Sequential(Linear(768, 512), ReLU, "
                      "Linear(512, 314), ReLU, Linear(314, 128), ReLU, Linear(128, 64), "
                      "Sigmoid): " +
                      expected_list(kTorchNames));
  }
  std::vector<std::string> expected;
  mlp_weights m;
  for (int l = 0; l < kLayers; ++l) {
    for (const bool is_bias : {false, true}) {
      const std::string name = n->prefix[l] + (is_bias ? ".bias" : ".weight");
      expected.push_back(name);
      if (!f.contains(name))
        throw input_error(where + ": missing tensor '" + name +
                          "'; expected: " + expected_list(*n));
      const auto& info = f.info(name);
      check_shape(where, name, l, is_bias, info.shape);
      if (info.dtype != "F32" && info.dtype != "F16" && info.dtype != "BF16" && info.dtype != "F64")
        throw input_error(where + ": tensor '" + name + "' has dtype " + info.dtype +
                          "; float weights (F32, F16, BF16 or F64) expected");
      const std::vector<float> v = f.to_f32(name);
      check_finite(where, name, v.data(), static_cast<std::int64_t>(v.size()));
      if (is_bias) {
        m.b[l] = Eigen::Map<const vectorf>(v.data(), kDims[l + 1]);
      } else {
        m.w[l] = Eigen::Map<const matrixf>(v.data(), kDims[l + 1], kDims[l]);
      }
    }
  }
  for (const auto& name : f.names())
    if (std::find(expected.begin(), expected.end(), name) == expected.end())
      throw input_error(where + ": unexpected tensor '" + name +
                        "' (this model has exactly: " + expected_list(*n) + ")");
  m.source = "'" + path + "' (safetensors, " + n->label + ")";
  return m;
}

/// A float .npy as float32 (from <f4 or <f8).
std::vector<float> npy_floats(const lowbit::io::npy_array& a, const std::string& where) {
  if (a.holds<float>()) return a.to_vector<float>();
  if (a.holds<double>()) {
    const std::vector<double> d = a.to_vector<double>();
    return std::vector<float>(d.begin(), d.end());
  }
  throw input_error(where + ": dtype '" + a.descr + "', expected float32 ('<f4') or float64");
}

mlp_weights load_npy_dir(const std::string& dir) {
  const std::string where = "weights directory '" + dir + "'";
  const naming* n = fs::exists(fs::path(dir) / "0.weight.npy")     ? &kTorchNames
                    : fs::exists(fs::path(dir) / "fc1.weight.npy") ? &kFcNames
                                                                   : nullptr;
  if (n == nullptr)
    throw input_error(where +
                      ": has neither 0.weight.npy nor fc1.weight.npy; expected one .npy "
                      "per tensor, named <tensor>.npy: " +
                      expected_list(kTorchNames));
  mlp_weights m;
  for (int l = 0; l < kLayers; ++l) {
    for (const bool is_bias : {false, true}) {
      const std::string name = n->prefix[l] + (is_bias ? ".bias" : ".weight");
      const fs::path p = fs::path(dir) / (name + ".npy");
      if (!fs::exists(p))
        throw input_error(where + ": missing " + p.filename().string() +
                          "; expected: " + expected_list(*n));
      const lowbit::io::npy_array a = lowbit::io::read_npy(p.string());
      const std::string w = "'" + p.string() + "'";
      check_shape(w, name, l, is_bias, a.shape);
      const std::vector<float> v = npy_floats(a, w);
      check_finite(w, name, v.data(), static_cast<std::int64_t>(v.size()));
      if (is_bias) {
        m.b[l] = Eigen::Map<const vectorf>(v.data(), kDims[l + 1]);
      } else {
        m.w[l] = Eigen::Map<const matrixf>(v.data(), kDims[l + 1], kDims[l]);
      }
    }
  }
  m.source = "'" + dir + "' (.npy files, " + n->label + ")";
  return m;
}

mlp_weights load_weights(const std::string& path) {
  if (!fs::exists(path)) throw input_error("--weights '" + path + "': no such file or directory");
  return fs::is_directory(path) ? load_npy_dir(path) : load_safetensors(path);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

/// Writes the weights with the nn.Sequential names: .safetensors file or .npy directory.
void save_weights(const mlp_weights& m, const std::string& path) {
  if (ends_with(path, ".safetensors")) {
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    lowbit::io::safetensors_writer wr;
    wr.set_metadata("format", "pt");
    for (int l = 0; l < kLayers; ++l) {
      const std::int64_t in = kDims[l], out = kDims[l + 1];
      wr.add<float>(kTorchNames.prefix[l] + ".weight", {out, in},
                    lowbit::span<const float>(m.w[l].data(), static_cast<std::size_t>(out * in)));
      wr.add<float>(kTorchNames.prefix[l] + ".bias", {out},
                    lowbit::span<const float>(m.b[l].data(), static_cast<std::size_t>(out)));
    }
    wr.save(path);
    return;
  }
  fs::create_directories(path);
  for (int l = 0; l < kLayers; ++l) {
    const std::int64_t in = kDims[l], out = kDims[l + 1];
    const fs::path p = fs::path(path) / kTorchNames.prefix[l];
    lowbit::io::write_npy(p.string() + ".weight.npy", {out, in}, m.w[l].data());
    lowbit::io::write_npy(p.string() + ".bias.npy", {out}, m.b[l].data());
  }
}

bool same_weights(const mlp_weights& a, const mlp_weights& b) {
  for (int l = 0; l < kLayers; ++l) {
    if (a.w[l].size() != b.w[l].size() || a.b[l].size() != b.b[l].size()) return false;
    if (std::memcmp(a.w[l].data(), b.w[l].data(), sizeof(float) * a.w[l].size()) != 0 ||
        std::memcmp(a.b[l].data(), b.b[l].data(), sizeof(float) * a.b[l].size()) != 0)
      return false;
  }
  return true;
}

/// A [rows x cols] float matrix from a .npy ([rows, cols], or [cols] as one row).
matrixf load_matrix_npy(const std::string& path, const char* flag) {
  if (!fs::exists(path)) throw input_error(std::string(flag) + " '" + path + "': no such file");
  const lowbit::io::npy_array a = lowbit::io::read_npy(path);
  const std::string where = std::string(flag) + " '" + path + "'";
  std::int64_t rows = 0;
  if (a.shape.size() == 2 && a.shape[1] == kDims[0]) {
    rows = a.shape[0];
  } else if (a.shape.size() == 1 && a.shape[0] == kDims[0]) {
    rows = 1;
  } else {
    throw input_error(where + ": shape " + shape_str(a.shape) + ", expected [batch, " +
                      std::to_string(kDims[0]) + "] (or [" + std::to_string(kDims[0]) + "])");
  }
  if (rows == 0) throw input_error(where + ": holds no rows");
  const std::vector<float> v = npy_floats(a, where);
  check_finite(where, "input", v.data(), static_cast<std::int64_t>(v.size()));
  return Eigen::Map<const matrixf>(v.data(), rows, kDims[0]);
}

// ---- measurement --------------------------------------------------------------------
/// FNV-1a over the bytes of the floats: equal checksums mean bit-identical outputs.
std::uint64_t fnv1a(const matrixf& m) {
  std::uint64_t h = 1469598103934665603ull;
  const auto* p = reinterpret_cast<const unsigned char*>(m.data());
  for (std::size_t i = 0; i < sizeof(float) * static_cast<std::size_t>(m.size()); ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

std::string checksum_line(const matrixf& y) {
  char b[128];
  std::snprintf(b, sizeof b, "fnv1a64 %016llx, sum %.9g", static_cast<unsigned long long>(fnv1a(y)),
                static_cast<double>(y.sum()));
  return b;
}

struct row {
  std::string name;  ///< table label
  std::string id;    ///< file name stem for --save-outputs
  std::string config;
  bool int8 = false, int4 = false, fp32 = false;
  lowbit::sequential model;
  // results
  matrixf y;
  double max_err = 0, mean_err = 0, rel_err = 0, bound = 0, rel_bound = 0;
  bool ok = true;
  std::string problem;
  double t_small = 0, t_large = 0;  ///< seconds per batch
  int reps_small = 0, reps_large = 0;
};

volatile float g_sink = 0;  // keeps timed forward passes observable

double time_forward(const lowbit::sequential& m, const matrixf& x, const lowbit::gemm_context& ctx,
                    long reps_flag, int& reps_used) {
  const auto f = [&] {
    const matrixf y = m(x, ctx);
    g_sink = g_sink + y(0, 0);
  };
  int reps = static_cast<int>(reps_flag);
  if (reps <= 0) {  // auto: about 0.15 s per cell, at least 5 runs, at most 2000
    const double t0 = example::now_s();
    f();
    const double t = std::max(example::now_s() - t0, 1e-7);
    reps = static_cast<int>(std::clamp(0.15 / t, 5.0, 2000.0));
  }
  reps_used = reps;
  return example::median_time(reps, f);
}

std::string with_commas(std::size_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string us(double seconds) { return example::fmt("%.1f", seconds * 1e6); }

long positive(example::flags& f, const std::string& name, long def, long min_value) {
  const long v = f.num(name, def);
  if (v < min_value)
    throw input_error("--" + name + " must be >= " + std::to_string(min_value) + ", got " +
                      std::to_string(v));
  return v;
}

int run(int argc, char** argv) {
  example::flags fl(argc, argv, kUsage);
  if (fl.help()) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string weights_path = fl.str("weights", "");
  const std::string input_path = fl.str("input", "");
  const std::string calib_path = fl.str("calib", "");
  const long seed_l = fl.num("seed", 0);
  if (seed_l < 0 || seed_l > 0xFFFFFFF0L)
    throw input_error("--seed must be in [0, 4294967280], got " + std::to_string(seed_l));
  const auto seed = static_cast<std::uint32_t>(seed_l);
  const long calib_batches = positive(fl, "calib-batches", 16, 1);
  const long calib_batch = positive(fl, "calib-batch", 32, 1);
  const long group = positive(fl, "group", 128, 32);
  if (group % 32 != 0)
    throw input_error("--group must be a multiple of 32, got " + std::to_string(group));
  const bool mse = !fl.flag("no-mse");
  const long big = positive(fl, "timing-batch", 256, 1);
  const long reps = positive(fl, "reps", 0, 0);
  const int threads = static_cast<int>(positive(fl, "threads", 1, 1));
  const char* fp32_name = example::use_native_fp32();
  double tol = kInt8Bound;
  {
    const std::string t = fl.str("tolerance", "");
    if (!t.empty()) {
      char* end = nullptr;
      tol = std::strtod(t.c_str(), &end);
      if (*end != '\0' || !(tol > 0))
        throw input_error("--tolerance expects a positive number, got '" + t + "'");
    }
  }
  const std::string out_dir = fl.str("out", "lowbit-results");
  const std::string save_weights_path = fl.str("save-weights", "");
  const std::string save_input_path = fl.str("save-input", "");
  const std::string save_outputs_dir = fl.str("save-outputs", "");
  const bool verify_roundtrip = fl.flag("verify-roundtrip");
  const std::string rows_flag = fl.str("rows", "");
  fl.finish();

  // ---- data ----------------------------------------------------------------------
  const mlp_weights weights =
      weights_path.empty() ? init_weights(seed) : load_weights(weights_path);
  const matrixf x = input_path.empty() ? normal_matrix(4, kDims[0], seed + 1)
                                       : load_matrix_npy(input_path, "--input");
  std::vector<matrixf> calib;
  std::string calib_desc;
  if (calib_path.empty()) {
    const matrixf all = normal_matrix(calib_batches * calib_batch, kDims[0], seed + 2);
    for (long i = 0; i < calib_batches; ++i)
      calib.emplace_back(all.middleRows(i * calib_batch, calib_batch));
    calib_desc = std::to_string(calib_batches) + " batches x " + std::to_string(calib_batch) +
                 " rows from N(0, 1), mt19937 seed " + std::to_string(seed + 2) +
                 " (held apart from the evaluation input)";
  } else {
    const matrixf all = load_matrix_npy(calib_path, "--calib");
    for (Eigen::Index r = 0; r < all.rows(); r += calib_batch)
      calib.emplace_back(all.middleRows(r, std::min<Eigen::Index>(calib_batch, all.rows() - r)));
    calib_desc = "'" + calib_path + "', " + std::to_string(all.rows()) + " rows in " +
                 std::to_string(calib.size()) + " batches of up to " + std::to_string(calib_batch);
  }
  const matrixf x_big = normal_matrix(big, kDims[0], seed + 3);
  const matrixf x_small = normal_matrix(4, kDims[0], seed + 3);

  if (!save_weights_path.empty()) save_weights(weights, save_weights_path);
  if (!save_input_path.empty()) {
    const fs::path parent = fs::path(save_input_path).parent_path();
    if (!parent.empty()) fs::create_directories(parent);
    lowbit::io::write_npy(save_input_path, {x.rows(), x.cols()}, x.data());
  }

  // ---- header: what runs ---------------------------------------------------------
  std::string head;
  auto line = [&](const std::string& s) {
    std::printf("%s\n", s.c_str());
    head += s + "  \n";
  };
  line(std::string("mlp_compare: lowbit ") + LOWBIT_VERSION_STRING);
  line("cpu: " + lowbit::describe_cpu());
  line(std::string("ISA: ") + lowbit::to_string(lowbit::best_isa()) + " (lowbit dispatch; cap " +
       lowbit::to_string(lowbit::max_isa()) + ", LOWBIT_MAX_ISA lowers it)");
  line("threads: " + std::to_string(threads) + " for lowbit's GEMMs and the FP32 baseline; " +
       "FP32 baseline: " + fp32_name + " (support/fp32_native.hpp)");
  line("gemm kernels: " + example::gemm_kernels_line());
  line(
      "model: nn.Sequential(Linear(768, 512), ReLU, Linear(512, 314), ReLU, Linear(314, 128), "
      "ReLU, Linear(128, 64), Sigmoid)");
  line("weights: " + weights.source);
  line("input: " + (input_path.empty() ? "4 x 768 from N(0, 1), mt19937 seed " +
                                             std::to_string(seed + 1) + " (Box-Muller)"
                                       : "'" + input_path + "', " + std::to_string(x.rows()) +
                                             " x " + std::to_string(x.cols())));
  line("calibration (static rows): " + calib_desc);
  line("timing: batch 4 and " + std::to_string(big) + " from N(0, 1), mt19937 seed " +
       std::to_string(seed + 3) + "; median of " +
       (reps > 0 ? std::to_string(reps) + " runs" : std::string("auto runs (~0.15 s, >= 5)")) +
       " after a warm-up; " + std::to_string(threads) + " thread(s)");

  // ---- configuration -------------------------------------------------------------
  lowbit::weight_spec w4 = lowbit::weight_spec::int4(lowbit::per_group{group});
  if (mse) w4.with_mse();
  lowbit::dynamic_options pt;
  pt.activations = lowbit::dynamic_options::granularity::per_tensor;
  pt.pytorch_compatible = true;
  pt.reduce_range = true;  // torch's dynamic Linear calls linear_dynamic(reduce_range=True)
  const std::string g = "g" + std::to_string(group);
  const std::string w4_desc = "int4 symmetric per group of " + std::to_string(group) +
                              (mse ? ", MSE-optimal clipping" : ", min-max scales");

  const lowbit::sequential fp32 = build_fp32(weights);
  std::vector<row> rows;
  {
    row r;
    r.name = "FP32";
    r.id = "fp32";
    r.fp32 = true;
    r.config = std::string("float32, ") + fp32_name;
    r.model = fp32;
    rows.push_back(std::move(r));
  }
  struct spec {
    const char* name;
    const char* id;
    lowbit::quantization_config cfg;
    std::string extra;
    bool int8;
  };
  const std::vector<spec> specs = {
      {"dynamic INT8", "dynamic_int8", lowbit::quantization_config::dynamic_int8(),
       "int8 per-channel weights, int8 per-row activations", true},
      {"dynamic INT8 (PyTorch-compatible)", "dynamic_int8_pt",
       lowbit::quantization_config::dynamic_int8(pt,
                                                 lowbit::weight_spec::int8(lowbit::per_tensor{})),
       "torch quantize_dynamic(qint8) default: int8 per-tensor weights, uint8 per-tensor "
       "activations, reduce_range",
       true},
      {"static INT8 (min-max)", "static_int8_minmax",
       lowbit::quantization_config::static_int8(lowbit::calibrator::minmax),
       "int8 per-channel weights, uint8 activations calibrated by min-max, ReLU fused", true},
      {"static INT8 (histogram)", "static_int8_histogram",
       lowbit::quantization_config::static_int8(lowbit::calibrator::histogram),
       "int8 per-channel weights, uint8 activations calibrated by histogram (L2), ReLU fused",
       true},
      {"W4A8", "w4a8", lowbit::quantization_config::w4a8(w4),
       w4_desc + ", int8 per-row activations", false},
      {"weight-only INT4", "weight_only_int4", lowbit::quantization_config::weight_only(w4),
       w4_desc + ", float32 activations", false},
  };
  {
    // --rows: which quantized rows to build (FP32, the baseline, always runs).
    std::vector<std::string> wanted;
    std::string valid = "fp32";
    for (const spec& sp : specs) valid += std::string(", ") + sp.id;
    for (std::size_t at = 0; !rows_flag.empty() && at <= rows_flag.size();) {
      const std::size_t comma = std::min(rows_flag.find(',', at), rows_flag.size());
      const std::string id = rows_flag.substr(at, comma - at);
      const bool known = id == "fp32" || std::any_of(specs.begin(), specs.end(),
                                                     [&](const spec& sp) { return id == sp.id; });
      if (!known) throw input_error("--rows: unknown row '" + id + "' (rows: " + valid + ")");
      wanted.push_back(id);
      at = comma + 1;
    }
    const auto selected = [&](const spec& sp) {
      return wanted.empty() || std::find(wanted.begin(), wanted.end(), sp.id) != wanted.end();
    };
    const long n_selected = static_cast<long>(std::count_if(specs.begin(), specs.end(), selected));
    example::progress bar("quantize", n_selected);
    long done = 0;
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (!selected(specs[i])) continue;
      bar.update(done++, specs[i].name);
      row r;
      r.name = std::string(specs[i].name) + (specs[i].int8 ? "" : " " + g);
      r.id = specs[i].id;
      r.int8 = specs[i].int8;
      r.int4 = !specs[i].int8;
      r.config = specs[i].cfg.describe() + ": " + specs[i].extra;
      r.model = fp32.quantize(specs[i].cfg, calib);
      rows.push_back(std::move(r));
    }
    bar.finish("done");
  }

  for (const row& r : rows) {
    line("row '" + r.name + "': " + r.config);
    line("    layers: " + r.model.describe());
  }

  // ---- accuracy ------------------------------------------------------------------
  const lowbit::gemm_context ctx{threads};
  const matrixf y_ref = fp32(x, ctx);
  const matrixf y64 = reference_f64(weights, x);
  const double fp32_vs_f64 = (y_ref - y64).cwiseAbs().maxCoeff();
  std::printf("\n");
  line("fp32 output checksum: " + checksum_line(y_ref));
  {
    std::string first = "fp32 output[0][0:4]:";
    for (int c = 0; c < 4; ++c) first += example::fmt(" %.7f", static_cast<double>(y_ref(0, c)));
    line(first);
  }
  // The outputs of an untrained network sit close to sigmoid(0) = 0.5, so an absolute
  // bound alone would also pass a constant 0.5: errors are compared with the spread too.
  const double spread = (y_ref.array() - y_ref.mean()).abs().mean();
  line(example::fmt("fp32 output spread: mean |y - mean(y)| = %.3g", spread) +
       example::fmt(", range [%.4f,", static_cast<double>(y_ref.minCoeff())) +
       example::fmt(" %.4f]", static_cast<double>(y_ref.maxCoeff())));
  const bool use_spread = spread > 1e-6;  // 0 for a single constant output
  bool all_ok = true;
  std::vector<std::string> checks;
  for (row& r : rows) {
    r.y = r.fp32 ? y_ref : r.model(x, ctx);
    const bool finite = r.y.allFinite();
    const bool in_range = finite && r.y.minCoeff() >= 0.0f && r.y.maxCoeff() <= 1.0f;
    r.max_err = finite ? (r.y - y_ref).cwiseAbs().maxCoeff() : NAN;
    r.mean_err = finite ? (r.y - y_ref).cwiseAbs().mean() : NAN;
    r.rel_err = use_spread ? r.mean_err / spread : 0.0;
    r.bound = r.fp32 ? kFp32Bound : r.int8 ? tol : kInt4Bound;
    r.rel_bound = r.int8 ? kInt8RelBound : kInt4RelBound;
    const double err = r.fp32 ? fp32_vs_f64 : r.max_err;
    if (!finite) {
      r.problem = "NaN or Inf in the output";
    } else if (!in_range) {
      r.problem = "output outside [0, 1] after sigmoid";
    } else if (!(err < r.bound)) {
      r.problem = example::fmt("max abs error %.3g", err) + example::fmt(" >= bound %.3g", r.bound);
    } else if (!r.fp32 && use_spread && !(r.rel_err < r.rel_bound)) {
      r.problem = example::fmt("mean abs error is %.1f%% of the FP32 spread", 100 * r.rel_err) +
                  example::fmt(" >= %.0f%%", 100 * r.rel_bound);
    }
    r.ok = r.problem.empty();
    all_ok = all_ok && r.ok;
    std::string c = std::string("check ") + (r.ok ? "PASS" : "FAIL") + ": " + r.name + ": ";
    if (r.fp32) {
      c += example::fmt("max abs error vs float64 reference %.3g", fp32_vs_f64) +
           example::fmt(" < %.0e; outputs finite, in [0, 1]", r.bound);
    } else {
      c += example::fmt("max abs error %.3g", r.max_err) + example::fmt(" < %.3g", r.bound) +
           (use_spread ? example::fmt(", mean abs error %.2f%% of the spread", 100 * r.rel_err) +
                             example::fmt(" < %.0f%%", 100 * r.rel_bound)
                       : std::string(", spread 0: relative check skipped")) +
           (r.int8 ? " (INT8 bounds)" : " (INT4 bounds)");
    }
    if (!r.ok) c += " -- " + r.problem;
    checks.push_back(c);
  }

  // ---- latency -------------------------------------------------------------------
  {
    example::progress bar("timing", static_cast<long>(rows.size() * 2));
    long done = 0;
    for (row& r : rows) {
      bar.update(done++, r.name + ", batch 4");
      r.t_small = time_forward(r.model, x_small, ctx, reps, r.reps_small);
      bar.update(done++, r.name + ", batch " + std::to_string(big));
      r.t_large = time_forward(r.model, x_big, ctx, reps, r.reps_large);
    }
    bar.finish("done");
  }

  // ---- report --------------------------------------------------------------------
  const std::string b_big = "b=" + std::to_string(big);
  example::table t({"row", "model bytes", "max abs err", "mean abs err", "err / spread",
                    "within tol.", "latency b=4 (µs)", "speedup b=4", "latency " + b_big + " (µs)",
                    "speedup " + b_big});
  const std::size_t fp32_bytes = rows[0].model.memory_bytes();
  for (const row& r : rows) {
    const std::size_t bytes = r.model.memory_bytes();
    t.row({r.name,
           with_commas(bytes) + example::fmt(" (%.1f%%)", 100.0 * static_cast<double>(bytes) /
                                                              static_cast<double>(fp32_bytes)),
           r.fp32 ? "0" : example::fmt("%.2e", r.max_err),
           r.fp32 ? "0" : example::fmt("%.2e", r.mean_err),
           r.fp32 ? "0" : (use_spread ? example::fmt("%.2f%%", 100 * r.rel_err) : "n/a"),
           r.ok ? "yes" : "NO", us(r.t_small), example::fmt("%.2fx", rows[0].t_small / r.t_small),
           us(r.t_large), example::fmt("%.2fx", rows[0].t_large / r.t_large)});
  }
  std::string md = t.markdown();
  md += "\nmodel bytes: memory_bytes() (weights, scales, sums, bias). Errors: vs FP32 on the " +
        std::to_string(x.rows()) +
        "-row evaluation input; spread = mean |y - mean(y)| of the FP32 outputs. Latency: "
        "median per batch. The FP32 baseline is " +
        fp32_name +
        " (OpenBLAS when installed, else Eigen built for this machine: support/fp32_native.hpp); "
        "lowbit's kernels are chosen at run time (" +
        lowbit::to_string(lowbit::best_isa()) + ").\n";
  std::printf("\n%s\n", md.c_str());
  for (const auto& c : checks) std::printf("%s\n", c.c_str());
  std::string reps_note = "runs per cell (batch 4 / " + std::to_string(big) + "):";
  for (const row& r : rows)
    reps_note +=
        " " + r.id + " " + std::to_string(r.reps_small) + "/" + std::to_string(r.reps_large);
  std::printf("%s\n", reps_note.c_str());

  // Round trip of the weights through both file formats.
  if (verify_roundtrip) {
    const fs::path st = fs::path(out_dir) / "mlp_roundtrip.safetensors";
    const fs::path nd = fs::path(out_dir) / "mlp_roundtrip_npy";
    save_weights(weights, st.string());
    save_weights(weights, nd.string());
    const mlp_weights a = load_weights(st.string());
    const mlp_weights b = load_weights(nd.string());
    const bool same = same_weights(weights, a) && same_weights(weights, b) &&
                      fnv1a(build_fp32(a)(x, ctx)) == fnv1a(y_ref) &&
                      fnv1a(build_fp32(b)(x, ctx)) == fnv1a(y_ref);
    fs::remove(st);
    fs::remove_all(nd);
    const std::string c = same ? "weights round trip: identical (.safetensors and .npy)"
                               : "weights round trip: DIFFERENT (check FAIL)";
    checks.push_back(c);
    std::printf("%s\n", c.c_str());
    all_ok = all_ok && same;
  }

  if (!save_outputs_dir.empty()) {
    fs::create_directories(save_outputs_dir);
    for (const row& r : rows)
      lowbit::io::write_npy((fs::path(save_outputs_dir) / (r.id + ".npy")).string(),
                            {r.y.rows(), r.y.cols()}, r.y.data());
    std::printf("outputs on the evaluation input: %s/<row>.npy\n", save_outputs_dir.c_str());
  }

  // Files: the Markdown report and two charts.
  std::string doc =
      "# MLP 768-512-314-128-64: FP32 vs lowbit quantization\n\n" + head + "\n" + md + "\n";
  for (const auto& c : checks) doc += c + "  \n";
  doc += reps_note + "\n";
  example::write_file(fs::path(out_dir) / "mlp_compare.md", doc);
  std::vector<example::bar> lat, err;
  for (const row& r : rows) {
    // Short labels: the chart's label column is 230 px wide.
    const std::string label = r.id == "fp32"                    ? "FP32"
                              : r.id == "dynamic_int8_pt"       ? "dynamic INT8 (PT)"
                              : r.id == "static_int8_minmax"    ? "static INT8 min-max"
                              : r.id == "static_int8_histogram" ? "static INT8 histogram"
                                                                : r.name;
    lat.push_back({label + " · b=4", rows[0].t_small / r.t_small, "#4C78A8"});
    lat.push_back({label + " · " + b_big, rows[0].t_large / r.t_large, "#F58518"});
    if (!r.fp32) {
      err.push_back({label + " · max", r.max_err, "#E45756"});
      err.push_back({label + " · mean", r.mean_err, "#72B7B2"});
    }
  }
  const std::string isa = lowbit::to_string(lowbit::best_isa());
  example::write_file(
      fs::path(out_dir) / "mlp_latency.svg",
      example::svg_bar_chart("MLP speedup vs FP32 (" + std::string(fp32_name) + "), " +
                                 std::to_string(threads) + " thread(s), " + isa,
                             "x", lat));
  example::write_file(
      fs::path(out_dir) / "mlp_error.svg",
      example::svg_bar_chart(
          "MLP abs error vs FP32 (sigmoid outputs), batch " + std::to_string(x.rows()), "", err));
  std::printf("wrote %s, %s, %s\n", (fs::path(out_dir) / "mlp_compare.md").string().c_str(),
              (fs::path(out_dir) / "mlp_latency.svg").string().c_str(),
              (fs::path(out_dir) / "mlp_error.svg").string().c_str());
  std::printf("result: %s\n", all_ok ? "all checks passed" : "CHECK FAILED");
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const input_error& e) {
    std::fprintf(stderr, "mlp_compare: error: %s\n", e.what());
    return 2;
  } catch (const lowbit::error& e) {  // malformed files, invalid settings
    std::fprintf(stderr, "mlp_compare: error: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mlp_compare: error: %s\n", e.what());
    return 2;
  }
}
