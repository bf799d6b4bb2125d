// SPDX-License-Identifier: Apache-2.0
// examples/support/gpt2_model.hpp: GPT-2 (pre-LayerNorm decoder, GELU, tied LM head, KV
// cache) built from lowbit layers, and where its weights come from. Example code, not part
// of the library; examples/gpt2_generate.cpp drives it.
//
// Weights are named and shaped as in Hugging Face's model.safetensors of gpt2:
//   wte.weight [V x C], wpe.weight [ctx x C], ln_f.{weight,bias} [C],
//   h.<i>.ln_1.{weight,bias}, h.<i>.ln_2.{weight,bias} [C],
//   h.<i>.attn.c_attn.{weight [C x 3C], bias [3C]}, h.<i>.attn.c_proj.{weight [C x C], bias},
//   h.<i>.mlp.c_fc.{weight [C x 4C], bias [4C]}, h.<i>.mlp.c_proj.{weight [4C x C], bias [C]}
// (some files prefix every name with "transformer."; extra tensors such as the attention
// masks h.<i>.attn.bias are ignored). GPT-2's Conv1D stores weights [in x out]; lowbit's
// layers take [out x in] like torch.nn.Linear, so every matrix is transposed while loading.
//
// A weight_source hands out rows of those tensors as float (a file, or deterministic
// synthetic N(0, 0.02) weights); the model reads every tensor once, in row order, one
// tensor (or, for wte, one shard of rows) at a time, and quantizes it at once: the float
// copy of the whole model never exists, so a process's peak RSS is the quantized model plus
// one tensor's worth of float.
//
// Embeddings. wte serves twice: input embedding (one row per token) and LM head
// (logits = h * wte^T, a [V x C] linear layer without bias). It is stored ONCE, as the LM
// head: float for FP32, the quantized copy for INT8/INT4, and the input embedding of a
// token dequantizes that one row of the LM head (C values per token, as llama.cpp's
// get_rows on a quantized token_embd). That saves a second copy (154 MB in float) at the
// price of also feeding the model quantized input embeddings. The LM head is stored as
// shards of `lm_shard_rows` vocabulary rows, so quantizing it needs one shard of float at a
// time; the shards run in parallel over threads. wpe stays float (C * ctx values, 3 MB).
#ifndef LOWBIT_EXAMPLES_SUPPORT_GPT2_MODEL_HPP_
#define LOWBIT_EXAMPLES_SUPPORT_GPT2_MODEL_HPP_

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <lowbit/io/safetensors.hpp>
#include <lowbit/lowbit.hpp>

#if defined(__unix__)
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#endif

namespace example {
namespace gpt2 {

using i64 = std::int64_t;

struct config {
  i64 n_vocab = 50257;
  i64 n_ctx = 1024;
  i64 n_embd = 768;
  i64 n_head = 12;
  i64 n_layer = 12;
  i64 head_dim() const { return n_embd / n_head; }
};

/// Every tensor the model reads, with its Hugging Face shape, in load order.
inline std::vector<std::pair<std::string, std::vector<i64>>> tensor_list(const config& c) {
  const i64 C = c.n_embd;
  std::vector<std::pair<std::string, std::vector<i64>>> t;
  for (i64 l = 0; l < c.n_layer; ++l) {
    const std::string p = "h." + std::to_string(l) + ".";
    t.push_back({p + "ln_1.weight", {C}});
    t.push_back({p + "ln_1.bias", {C}});
    t.push_back({p + "attn.c_attn.weight", {C, 3 * C}});
    t.push_back({p + "attn.c_attn.bias", {3 * C}});
    t.push_back({p + "attn.c_proj.weight", {C, C}});
    t.push_back({p + "attn.c_proj.bias", {C}});
    t.push_back({p + "ln_2.weight", {C}});
    t.push_back({p + "ln_2.bias", {C}});
    t.push_back({p + "mlp.c_fc.weight", {C, 4 * C}});
    t.push_back({p + "mlp.c_fc.bias", {4 * C}});
    t.push_back({p + "mlp.c_proj.weight", {4 * C, C}});
    t.push_back({p + "mlp.c_proj.bias", {C}});
  }
  t.push_back({"ln_f.weight", {C}});
  t.push_back({"ln_f.bias", {C}});
  t.push_back({"wpe.weight", {c.n_ctx, C}});
  t.push_back({"wte.weight", {c.n_vocab, C}});
  return t;
}

inline std::string shape_str(const std::vector<i64>& s) {
  std::string r = "[";
  for (std::size_t i = 0; i < s.size(); ++i) r += (i ? " x " : "") + std::to_string(s[i]);
  return r + "]";
}

// ---- weight sources ------------------------------------------------------------------

/// 64-bit FNV-1a over 32-bit words, per tensor, combined in name order: the checksum
/// gpt2_generate stores in a synthetic file's metadata and verifies when loading it.
class checksum {
 public:
  /// Hashes rows [r0, r1) of `name`; reads must come in row order to be hashed.
  void add(const std::string& name, i64 r0, i64 r1, const float* v, std::size_t n) {
    state& s = tensors_[name];
    if (r0 != s.next_row) s.ordered = false;
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t b;
      std::memcpy(&b, v + i, 4);
      s.h = (s.h ^ b) * 0x100000001b3ull;
    }
    s.next_row = r1;
  }
  /// False when some tensor was read out of order (then hex() is meaningless).
  bool ordered() const {
    for (const auto& kv : tensors_)
      if (!kv.second.ordered) return false;
    return true;
  }
  std::string hex() const {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const auto& kv : tensors_) {
      for (unsigned char ch : kv.first) h = (h ^ ch) * 0x100000001b3ull;
      h = (h ^ kv.second.h) * 0x100000001b3ull;
    }
    char b[17];
    std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(h));
    return b;
  }

 private:
  struct state {
    std::uint64_t h = 0xcbf29ce484222325ull;
    i64 next_row = 0;
    bool ordered = true;
  };
  std::map<std::string, state> tensors_;
};

class weight_source {
 public:
  virtual ~weight_source() = default;
  virtual const config& model_config() const = 0;
  virtual std::string describe() const = 0;
  virtual bool synthetic() const = 0;
  /// The checksum the source claims for itself (a file's metadata), empty if none.
  virtual std::string claimed_checksum() const { return ""; }

  /// Rows [r0, r1) of tensor `name` in Hugging Face layout, as float, into out
  /// ((r1 - r0) * cols values). A 1-D tensor is one row.
  void read_rows(const std::string& name, i64 r0, i64 r1, float* out) {
    const std::vector<i64> s = shape_of(name);
    const i64 cols = s.size() == 2 ? s[1] : s[0];
    do_read(name, r0, r1, cols, out);
    if (hashing_) sum_.add(name, r0, r1, out, static_cast<std::size_t>((r1 - r0) * cols));
  }
  std::vector<float> read_all(const std::string& name) {
    const std::vector<i64> s = shape_of(name);
    const i64 rows = s.size() == 2 ? s[0] : 1, cols = s.size() == 2 ? s[1] : s[0];
    std::vector<float> v(static_cast<std::size_t>(rows * cols));
    read_rows(name, 0, rows, v.data());
    return v;
  }
  std::vector<i64> shape_of(const std::string& name) const {
    for (const auto& t : tensor_list(model_config()))
      if (t.first == name) return t.second;
    throw std::logic_error("gpt2: unknown tensor " + name);
  }
  void enable_checksum() { hashing_ = true; }
  const checksum& computed_checksum() const { return sum_; }

 protected:
  virtual void do_read(const std::string& name, i64 r0, i64 r1, i64 cols, float* out) = 0;

 private:
  bool hashing_ = false;
  checksum sum_;
};

/// Deterministic synthetic weights with GPT-2's initialization: every matrix (wte, wpe and
/// the four linear layers) N(0, 0.02), LayerNorm weights 1, biases 0. Row r of a tensor
/// depends only on (seed, name, r), so rows can be generated in any order and in shards.
class synthetic_source final : public weight_source {
 public:
  synthetic_source(config c, std::uint64_t seed) : c_(c), seed_(seed) {}
  const config& model_config() const override { return c_; }
  bool synthetic() const override { return true; }
  std::string describe() const override {
    return "SYNTHETIC weights (deterministic N(0, 0.02), LayerNorm 1/0, biases 0; seed " +
           std::to_string(seed_) + "), not the trained GPT-2: generated text is gibberish";
  }

 protected:
  void do_read(const std::string& name, i64 r0, i64 r1, i64 cols, float* out) override {
    const bool is_ln = name.find("ln_") != std::string::npos;
    const bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    if (is_ln || !is_weight) {  // LayerNorm gamma = 1, beta = 0; biases = 0
      std::fill(out, out + (r1 - r0) * cols, is_ln && is_weight ? 1.0f : 0.0f);
      return;
    }
    std::uint64_t nh = 0xcbf29ce484222325ull;
    for (unsigned char ch : name) nh = (nh ^ ch) * 0x100000001b3ull;
    const i64 half = (cols + 1) / 2;
    Eigen::ArrayXf u1(half), u2(half), rad(half), th(half);
    for (i64 r = r0; r < r1; ++r) {
      std::uint64_t st = seed_ ^ nh ^ (static_cast<std::uint64_t>(r) * 0x9E3779B97F4A7C15ull);
      for (i64 i = 0; i < half; ++i) {  // 24-bit uniforms: u1 in (0, 1], u2 in [0, 1)
        u1[i] = (static_cast<float>(splitmix(st) >> 40) + 1.0f) * (1.0f / 16777216.0f);
        u2[i] = static_cast<float>(splitmix(st) >> 40) * (1.0f / 16777216.0f);
      }
      // Box-Muller with Eigen's vectorized log/sqrt/cos/sin (the values depend on the
      // build's SIMD level in the last bits; a written file carries its own checksum).
      rad = 0.02f * (-2.0f * u1.log()).sqrt();
      th = 6.2831853071795864f * u2;
      u1 = rad * th.cos();
      u2 = rad * th.sin();
      float* o = out + (r - r0) * cols;
      for (i64 i = 0; i < half; ++i) {
        o[2 * i] = u1[i];
        if (2 * i + 1 < cols) o[2 * i + 1] = u2[i];
      }
    }
  }

 private:
  static std::uint64_t splitmix(std::uint64_t& s) {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  config c_;
  std::uint64_t seed_;
};

/// A Hugging Face GPT-2 model.safetensors (F32, F16 or BF16), memory-mapped. The shapes
/// give the configuration (vocabulary, context, width, layers; heads = width / 64 as in
/// every GPT-2 size); every tensor is checked for presence, dtype and shape with an error
/// naming it. Pages of the mapping are released after each read (madvise DONTNEED), so the
/// file does not count in the resident set once its tensors are converted.
class safetensors_source final : public weight_source {
 public:
  explicit safetensors_source(const std::string& path) : path_(path), f_(path) {
    prefix_ = f_.contains("wte.weight") ? ""
              : f_.contains("transformer.wte.weight")
                  ? "transformer."
                  : throw std::runtime_error(
                        "'" + path +
                        "' is not a GPT-2 checkpoint: it has no tensor 'wte.weight' (nor "
                        "'transformer.wte.weight')");
    const auto& wte = f_.info(prefix_ + "wte.weight");
    if (wte.shape.size() != 2 || wte.shape[0] < 1 || wte.shape[1] < 64 || wte.shape[1] % 64 != 0)
      throw std::runtime_error("'" + path + "': tensor 'wte.weight' has shape " +
                               shape_str(wte.shape) +
                               ", expected [vocab x width] with width a multiple of 64");
    c_.n_vocab = wte.shape[0];
    c_.n_embd = wte.shape[1];
    c_.n_head = c_.n_embd / 64;
    const std::string wpe = prefix_ + "wpe.weight";
    if (!f_.contains(wpe)) throw std::runtime_error("'" + path + "': missing tensor '" + wpe + "'");
    if (f_.info(wpe).shape.size() != 2 || f_.info(wpe).shape[0] < 1)
      throw std::runtime_error("'" + path + "': tensor '" + wpe + "' has shape " +
                               shape_str(f_.info(wpe).shape) + ", expected [context x width]");
    c_.n_ctx = f_.info(wpe).shape[0];
    c_.n_layer = 0;
    while (f_.contains(prefix_ + "h." + std::to_string(c_.n_layer) + ".ln_1.weight")) ++c_.n_layer;
    if (c_.n_layer == 0)
      throw std::runtime_error("'" + path + "': missing tensor '" + prefix_ +
                               "h.0.ln_1.weight' (no transformer blocks)");
    for (const auto& t : tensor_list(c_)) {
      const std::string full = prefix_ + t.first;
      if (!f_.contains(full))
        throw std::runtime_error("'" + path + "': missing tensor '" + full + "' (a GPT-2 with " +
                                 std::to_string(c_.n_layer) + " layers needs it)");
      const auto& in = f_.info(full);
      if (in.shape != t.second)
        throw std::runtime_error("'" + path + "': tensor '" + full + "' has shape " +
                                 shape_str(in.shape) + ", expected " + shape_str(t.second) +
                                 " (GPT-2 Conv1D weights are stored [in x out])");
      if (in.dtype != "F32" && in.dtype != "F16" && in.dtype != "BF16")
        throw std::runtime_error("'" + path + "': tensor '" + full + "' has dtype " + in.dtype +
                                 "; only F32, F16 and BF16 are supported");
    }
    const auto& md = f_.metadata();
    if (const auto it = md.find("lowbit.checksum"); it != md.end()) claimed_ = it->second;
    if (const auto it = md.find("lowbit.synthetic"); it != md.end()) synthetic_note_ = it->second;
  }
  const config& model_config() const override { return c_; }
  bool synthetic() const override { return !synthetic_note_.empty(); }
  std::string claimed_checksum() const override { return claimed_; }
  std::string describe() const override {
    std::string s = "Hugging Face safetensors '" + path_ + "'";
    if (!synthetic_note_.empty())
      s += ": SYNTHETIC weights written by gpt2_generate (" + synthetic_note_ + ")";
    return s;
  }

 protected:
  void do_read(const std::string& name, i64 r0, i64 r1, i64 cols, float* out) override {
    const std::string full = prefix_ + name;
    const auto& in = f_.info(full);
    const lowbit::span<const std::uint8_t> all = f_.bytes(full);
    const std::size_t esz = in.dtype == "F32" ? 4 : 2;
    const std::uint8_t* p = all.data() + static_cast<std::size_t>(r0 * cols) * esz;
    const auto n = static_cast<std::size_t>((r1 - r0) * cols);
    if (in.dtype == "F32") {
      std::memcpy(out, p, n * 4);
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t h = static_cast<std::uint16_t>(p[2 * i] | (p[2 * i + 1] << 8));
        out[i] = in.dtype == "BF16" ? bits(static_cast<std::uint32_t>(h) << 16) : half(h);
      }
    }
#if defined(__unix__)
    if (f_.is_mapped()) {
      // Drop the pages just read from this process's resident set. The kernel maps pages
      // around a faulting one too (fault-around, 64 KB by default), also before the
      // range, so the range is widened by 1 MB on both sides (within the mapping): those
      // pages are either consumed already or refault from the page cache when read.
      const lowbit::span<const std::uint8_t> file = f_.file_bytes();
      const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
      const auto lo = reinterpret_cast<std::uintptr_t>(file.data()), hi = lo + file.size();
      const std::uintptr_t margin = 1 << 20;
      auto b = reinterpret_cast<std::uintptr_t>(p);
      auto e = reinterpret_cast<std::uintptr_t>(p + n * esz);
      b = (b > lo + margin ? b - margin : lo) / page * page;
      e = std::min(hi, e + margin);
      if (b >= lo / page * page && e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
    }
#endif
  }

 private:
  static float bits(std::uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  }
  static float half(std::uint16_t h) {
    const std::uint32_t sign = (h & 0x8000u) << 16, ex = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (ex == 0) {  // zero or subnormal: man * 2^-24
      const float v = static_cast<float>(man) * 5.9604644775390625e-8f;
      return sign ? -v : v;
    }
    if (ex == 31) return bits(sign | 0x7F800000u | (man << 13));
    return bits(sign | ((ex + 112) << 23) | (man << 13));
  }
  std::string path_;
  lowbit::io::safetensors_file f_;
  std::string prefix_, claimed_, synthetic_note_;
  config c_;
};

// ---- layers ----------------------------------------------------------------------------

enum class precision { fp32, int8, int4 };

/// What the quantized variants are made of.
struct quant_options {
  precision prec = precision::fp32;
  lowbit::linear_mode mode = lowbit::linear_mode::dynamic_w8a8;  ///< int8/int4 layers
  i64 group = 128;                                               ///< int4 group size
  bool mse = false;                                              ///< int4 MSE clipping
  i64 lm_shard_rows = 1024;                                      ///< LM head shard size
};

/// Static split of [0, count) over `threads`, run by lowbit's own fork-join (its persistent
/// worker pool, the one the quantized GEMMs use), so the FP32 layers and the LM-head shards
/// are threaded exactly like lowbit's layers. Results never depend on the thread count.
/// (lowbit::detail: an internal of the library this example ships with.)
template <class F>
void parallel_slices(i64 count, int threads, F&& f) {
  lowbit::detail::parallel_for(count, threads, std::forward<F>(f));
}

/// One linear layer y = x W^T + b of the model, FP32 (lowbit::float_linear on the
/// process's float GEMM, lowbit/layers/fp32_gemm.hpp) or
/// quantized (lowbit::quantized_linear), optionally split into shards of output rows.
class linear {
 public:
  /// Adds the output rows w [rows x in] (row-major, [out x in]) as one shard.
  void add_shard(const quant_options& o, lowbit::matrixf w, const std::vector<float>& bias) {
    offsets_.push_back(rows_);
    rows_ += w.rows();
    in_ = w.cols();
    if (o.prec == precision::fp32) {
      lowbit::vectorf b =
          Eigen::Map<const lowbit::vectorf>(bias.data(), static_cast<Eigen::Index>(bias.size()));
      f_.emplace_back(std::move(w), std::move(b));
      return;
    }
    const lowbit::span<const float> bs(bias);
    lowbit::weight_spec ws = o.prec == precision::int8
                                 ? lowbit::weight_spec::int8()
                                 : lowbit::weight_spec::int4(lowbit::per_group{o.group});
    if (o.prec == precision::int4 && o.mse) ws.with_mse();
    if (o.mode == lowbit::linear_mode::weight_only) {
      q_.push_back(lowbit::quantized_linear::weight_only(lowbit::view(w), bs, ws));
    } else if (o.prec == precision::int8) {
      q_.push_back(lowbit::quantized_linear::dynamic(lowbit::view(w), bs));
    } else {
      q_.push_back(lowbit::quantized_linear::w4a8(lowbit::view(w), bs, ws));
    }
  }

  i64 out_features() const { return rows_; }
  i64 in_features() const { return in_; }
  std::size_t shards() const { return f_.empty() ? q_.size() : f_.size(); }
  bool quantized() const { return !q_.empty(); }

  /// y[m x out] = x[m x in] W^T + b, row strides ldx, ldy.
  void forward(const float* x, i64 m, i64 ldx, float* y, i64 ldy, int threads) const {
    if (!f_.empty()) {
      if (f_.size() == 1 && threads > 1) {  // FP32: split the output rows over threads
        const lowbit::float_linear& l = f_[0];
        parallel_slices((rows_ + 15) / 16, threads, [&](i64 b, i64 e) {
          const i64 n0 = b * 16, n1 = std::min(rows_, e * 16);
          if (n0 >= n1) return;
          using stride = Eigen::OuterStride<>;
          Eigen::Map<const lowbit::matrixf, 0, stride> xm(x, m, in_, stride(ldx));
          Eigen::Map<lowbit::matrixf, 0, stride> ym(y + n0, m, n1 - n0, stride(ldy));
          // the process's float GEMM (lowbit/layers/fp32_gemm.hpp), one thread per slice
          const lowbit::fp32_gemm_backend g = lowbit::fp32_gemm();
          if (g.run != nullptr)
            g.run(m, n1 - n0, in_, x, ldx, l.weight().data() + n0 * in_, in_, y + n0, ldy, 1);
          else
            ym.noalias() = xm * l.weight().middleRows(n0, n1 - n0).transpose();
          if (l.bias().size()) ym.rowwise() += l.bias().segment(n0, n1 - n0).transpose();
        });
        return;
      }
      parallel_slices(static_cast<i64>(f_.size()), threads, [&](i64 b, i64 e) {
        for (i64 s = b; s < e; ++s)
          f_[static_cast<std::size_t>(s)].forward(x, m, ldx,
                                                  y + offsets_[static_cast<std::size_t>(s)], ldy);
      });
      return;
    }
    if (q_.size() == 1) {
      q_[0].forward(x, m, ldx, y, ldy, lowbit::gemm_context{threads});
      return;
    }
    // Shards (the LM head). The per-row int8 activations are the same for every shard:
    // quantize them once (exactly as quantized_linear does: narrow symmetric, amax / 127)
    // and call the GEMM on each shard's packed weights; weight-only shards take f32.
    const bool int8_act = q_[0].mode() != lowbit::linear_mode::weight_only;
    std::vector<std::int8_t> xq;
    lowbit::quant_params p;
    if (int8_act) {
      const lowbit::tensor_view<const float> v(x, {m, in_}, {ldx, 1});
      p = lowbit::choose_qparams_per_row(
          v, lowbit::qparams_options::symmetric(lowbit::dtype::int8,
                                                lowbit::symmetric_convention::narrow));
      xq.resize(static_cast<std::size_t>(m * in_));
      lowbit::quantize(v, p, lowbit::span<std::int8_t>(xq));
    } else {  // quantized_linear would throw on these inside a worker thread: check here
      for (i64 r = 0; r < m; ++r)
        for (i64 k = 0; k < in_; ++k)
          if (!std::isfinite(x[r * ldx + k]))
            throw std::runtime_error("gpt2: non-finite activation entering the LM head");
    }
    parallel_slices(static_cast<i64>(q_.size()), threads, [&](i64 b, i64 e) {
      for (i64 s = b; s < e; ++s) {
        const lowbit::quantized_linear& l = q_[static_cast<std::size_t>(s)];
        float* ys = y + offsets_[static_cast<std::size_t>(s)];
        if (!int8_act || l.weights().k() != in_) {
          l.forward(x, m, ldx, ys, ldy);
        } else {
          lowbit::gemm(
              lowbit::activations::s8(xq.data(), m, in_, in_, lowbit::span<const float>(p.scales)),
              l.weights(), lowbit::epilogue::f32(lowbit::span<const float>(l.bias())),
              lowbit::output(ys, ldy));
        }
      }
    });
  }

  /// Row r of W as float (dequantized for quantized layers): the input embedding.
  void row(i64 r, float* out) const {
    const std::size_t s = static_cast<std::size_t>(
        std::upper_bound(offsets_.begin(), offsets_.end(), r) - offsets_.begin() - 1);
    const i64 rr = r - offsets_[s];
    if (!f_.empty()) {
      const auto& w = f_[s].weight();
      std::copy(w.row(rr).data(), w.row(rr).data() + in_, out);
      return;
    }
    const lowbit::packed_weights& pw = q_[s].weights();
    const auto& sc = pw.scales();
    if (pw.format() == lowbit::weight_format::s8) {
      for (i64 k = 0; k < in_; ++k)
        out[k] = static_cast<float>(pw.value(rr, k)) * sc[static_cast<std::size_t>(rr)];
    } else {
      const i64 g = pw.group_size(), groups = pw.groups();
      for (i64 k = 0; k < in_; ++k)
        out[k] =
            static_cast<float>(pw.value(rr, k)) * sc[static_cast<std::size_t>(rr * groups + k / g)];
    }
  }

  std::size_t memory_bytes() const {
    std::size_t b = 0;
    for (const auto& l : f_) b += l.memory_bytes();
    for (const auto& l : q_) b += l.memory_bytes();
    return b;
  }
  std::string describe() const {
    std::string d = !f_.empty() ? f_[0].describe() : q_[0].describe();
    if (shards() > 1)
      d += " (x" + std::to_string(shards()) + " shards, " + std::to_string(rows_) + " rows)";
    return d;
  }
  /// The quantized shards (empty for FP32).
  const std::vector<lowbit::quantized_linear>& quantized_shards() const { return q_; }

 private:
  std::vector<lowbit::float_linear> f_;
  std::vector<lowbit::quantized_linear> q_;
  std::vector<i64> offsets_;
  i64 rows_ = 0, in_ = 0;
};

// ---- the model ---------------------------------------------------------------------------

struct block {
  std::vector<float> ln1_g, ln1_b, ln2_g, ln2_b;
  linear attn, proj, fc, mlp_proj;
};

/// Where a forward pass spends its time (the example's profile).
enum op : int {
  op_embed,
  op_layernorm,
  op_qkv,
  op_attention,
  op_attn_proj,
  op_mlp_fc,
  op_gelu,
  op_mlp_proj,
  op_lm_head,
  op_count
};
inline const char* op_name(int o) {
  static const char* const n[] = {"embedding",
                                  "layernorm",
                                  "attn c_attn (qkv)",
                                  "attention (KV cache)",
                                  "attn c_proj",
                                  "mlp c_fc",
                                  "gelu",
                                  "mlp c_proj",
                                  "lm head"};
  return n[o];
}

class model {
 public:
  /// Reads every tensor from `src` once and builds the layers of `o`. `on_tensor` is
  /// called with (tensors done, total) for a progress bar.
  void load(weight_source& src, const quant_options& o,
            const std::function<void(i64, i64)>& on_tensor = {}) {
    c_ = src.model_config();
    opt_ = o;
    const i64 C = c_.n_embd;
    if (C % c_.n_head != 0) throw std::runtime_error("gpt2: width not divisible by heads");
    const i64 total = c_.n_layer * 12 + 4;
    i64 done = 0;
    auto tick = [&] {
      ++done;
      if (on_tensor) on_tensor(done, total);
    };
    load_times_ = {};
    auto vec = [&](const std::string& n) {
      const auto t0 = clock::now();
      std::vector<float> v = src.read_all(n);
      load_times_[0] += secs(t0, clock::now());
      tick();
      return v;
    };
    // Conv1D [in x out] -> [out x in], read in blocks of input rows.
    auto lin = [&](linear& l, const std::string& n) {
      const std::vector<i64> s = src.shape_of(n + ".weight");
      const i64 in = s[0], out = s[1];
      lowbit::matrixf w(out, in);
      std::vector<float> buf(static_cast<std::size_t>(64 * out));
      for (i64 r0 = 0; r0 < in; r0 += 64) {
        const i64 r1 = std::min(in, r0 + 64);
        auto t0 = clock::now();
        src.read_rows(n + ".weight", r0, r1, buf.data());
        auto t1 = clock::now();
        for (i64 c = 0; c < out; ++c) {  // contiguous writes, reads within the L2-sized block
          float* dst = w.data() + c * in;
          for (i64 r = r0; r < r1; ++r) dst[r] = buf[static_cast<std::size_t>((r - r0) * out + c)];
        }
        load_times_[0] += secs(t0, t1);
        load_times_[1] += secs(t1, clock::now());
      }
      buf = std::vector<float>();
      tick();
      const std::vector<float> b = vec(n + ".bias");
      const auto t0 = clock::now();
      l.add_shard(o, std::move(w), b);
      load_times_[2] += secs(t0, clock::now());
    };
    h_.clear();
    h_.resize(static_cast<std::size_t>(c_.n_layer));
    for (i64 i = 0; i < c_.n_layer; ++i) {
      block& b = h_[static_cast<std::size_t>(i)];
      const std::string p = "h." + std::to_string(i) + ".";
      b.ln1_g = vec(p + "ln_1.weight");
      b.ln1_b = vec(p + "ln_1.bias");
      lin(b.attn, p + "attn.c_attn");
      lin(b.proj, p + "attn.c_proj");
      b.ln2_g = vec(p + "ln_2.weight");
      b.ln2_b = vec(p + "ln_2.bias");
      lin(b.fc, p + "mlp.c_fc");
      lin(b.mlp_proj, p + "mlp.c_proj");
    }
    lnf_g_ = vec("ln_f.weight");
    lnf_b_ = vec("ln_f.bias");
    wpe_ = vec("wpe.weight");
    // wte = the LM head [V x C], in shards of lm_shard_rows rows (quantized one at a time).
    lm_ = linear();
    const std::vector<float> no_bias;
    for (i64 r0 = 0; r0 < c_.n_vocab; r0 += o.lm_shard_rows) {
      const i64 r1 = std::min(c_.n_vocab, r0 + o.lm_shard_rows);
      lowbit::matrixf w(r1 - r0, C);
      const auto t0 = clock::now();
      src.read_rows("wte.weight", r0, r1, w.data());
      const auto t1 = clock::now();
      lm_.add_shard(o, std::move(w), no_bias);
      load_times_[0] += secs(t0, t1);
      load_times_[2] += secs(t1, clock::now());
    }
    tick();
  }

  const config& cfg() const { return c_; }
  const quant_options& options() const { return opt_; }
  /// Seconds of the last load() spent reading (or generating) float weights, transposing
  /// Conv1D matrices, and building the layers (quantize + pack, or the float copy).
  const std::array<double, 3>& load_times() const { return load_times_; }
  const linear& lm_head() const { return lm_; }
  const block& layer(i64 i) const { return h_[static_cast<std::size_t>(i)]; }

  struct memory {
    std::size_t linears = 0, lm_head = 0, wpe = 0, norms = 0;
    std::size_t total() const { return linears + lm_head + wpe + norms; }
  };
  memory memory_bytes() const {
    memory m;
    for (const auto& b : h_) {
      m.linears += b.attn.memory_bytes() + b.proj.memory_bytes() + b.fc.memory_bytes() +
                   b.mlp_proj.memory_bytes();
      m.norms += (b.ln1_g.size() + b.ln1_b.size() + b.ln2_g.size() + b.ln2_b.size()) * 4;
    }
    m.norms += (lnf_g_.size() + lnf_b_.size()) * 4;
    m.wpe = wpe_.size() * 4;
    m.lm_head = lm_.memory_bytes();
    return m;
  }

 private:
  friend class session;
  config c_;
  quant_options opt_;
  std::vector<block> h_;
  std::vector<float> lnf_g_, lnf_b_, wpe_;
  linear lm_;
  std::array<double, 3> load_times_{};
  using clock = std::chrono::steady_clock;
  static double secs(clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  }
};

/// A generation session: KV cache, scratch buffers and the time profile.
class session {
 public:
  session(const model& m, i64 max_tokens, int threads) : m_(m), threads_(threads) {
    const config& c = m.cfg();
    if (max_tokens > c.n_ctx)
      throw std::runtime_error("gpt2: " + std::to_string(max_tokens) +
                               " tokens exceed the model's context of " + std::to_string(c.n_ctx));
    max_ = max_tokens;
    const auto kv = static_cast<std::size_t>(max_tokens * c.n_embd);
    k_.assign(static_cast<std::size_t>(c.n_layer), std::vector<float>(kv));
    v_.assign(static_cast<std::size_t>(c.n_layer), std::vector<float>(kv));
    logits_.resize(static_cast<std::size_t>(c.n_vocab));
  }
  void reset() { len_ = 0; }
  i64 length() const { return len_; }

  /// Feeds `n` tokens at positions length() .. length() + n - 1 and returns the logits
  /// of the last one (V floats, valid until the next call).
  const std::vector<float>& forward(const int* tokens, i64 n) {
    const config& c = m_.cfg();
    const i64 C = c.n_embd, H = c.n_head, D = c.head_dim(), pos0 = len_;
    if (n < 1 || pos0 + n > max_)
      throw std::runtime_error("gpt2: sequence of " + std::to_string(pos0 + n) +
                               " tokens exceeds the session's " + std::to_string(max_));
    grow(n);
    float* x = x_.data();
    float* h = hbuf_.data();
    float* qkv = qkv_.data();
    float* a = att_.data();
    float* f = fc_.data();
    if (cpu_profile_) last_cpu_ = process_cpu();
    auto t = now();
    for (i64 i = 0; i < n; ++i) {
      if (tokens[i] < 0 || tokens[i] >= c.n_vocab)
        throw std::runtime_error("gpt2: token id " + std::to_string(tokens[i]) +
                                 " outside the vocabulary of " + std::to_string(c.n_vocab));
      m_.lm_.row(tokens[i], x + i * C);
      const float* pe = m_.wpe_.data() + (pos0 + i) * C;
      for (i64 j = 0; j < C; ++j) x[i * C + j] += pe[j];
    }
    t = lap(op_embed, t);
    for (i64 l = 0; l < c.n_layer; ++l) {
      const block& b = m_.h_[static_cast<std::size_t>(l)];
      layernorm(x, n, b.ln1_g, b.ln1_b, h);
      t = lap(op_layernorm, t);
      b.attn.forward(h, n, C, qkv, 3 * C, threads_);
      t = lap(op_qkv, t);
      float* kc = k_[static_cast<std::size_t>(l)].data();
      float* vc = v_[static_cast<std::size_t>(l)].data();
      for (i64 i = 0; i < n; ++i) {
        std::copy(qkv + i * 3 * C + C, qkv + i * 3 * C + 2 * C, kc + (pos0 + i) * C);
        std::copy(qkv + i * 3 * C + 2 * C, qkv + i * 3 * C + 3 * C, vc + (pos0 + i) * C);
      }
      // Attention over the cache, per query row and head, in f32 (Eigen, vectorized).
      const float scale = 1.0f / std::sqrt(static_cast<float>(D));
      using stride = Eigen::OuterStride<>;
      using cmat = Eigen::Map<const lowbit::matrixf, 0, stride>;
      for (i64 i = 0; i < n; ++i) {
        const i64 T = pos0 + i + 1;  // causal: positions 0 .. pos0 + i
        Eigen::Map<Eigen::VectorXf> sc(score_.data(), T);
        for (i64 hd = 0; hd < H; ++hd) {
          const cmat K(kc + hd * D, T, D, stride(C)), V(vc + hd * D, T, D, stride(C));
          sc.noalias() = K * Eigen::Map<const Eigen::VectorXf>(qkv + i * 3 * C + hd * D, D);
          sc *= scale;
          sc = (sc.array() - sc.maxCoeff()).exp().matrix();
          sc /= sc.sum();
          Eigen::Map<Eigen::RowVectorXf>(a + i * C + hd * D, D).noalias() = sc.transpose() * V;
        }
      }
      t = lap(op_attention, t);
      b.proj.forward(a, n, C, h, C, threads_);
      for (i64 j = 0; j < n * C; ++j) x[j] += h[j];
      t = lap(op_attn_proj, t);
      layernorm(x, n, b.ln2_g, b.ln2_b, h);
      t = lap(op_layernorm, t);
      b.fc.forward(h, n, C, f, 4 * C, threads_);
      t = lap(op_mlp_fc, t);
      lowbit::apply(lowbit::activation::gelu_tanh, Eigen::Map<lowbit::matrixf>(f, n, 4 * C));
      t = lap(op_gelu, t);
      b.mlp_proj.forward(f, n, 4 * C, h, C, threads_);
      for (i64 j = 0; j < n * C; ++j) x[j] += h[j];
      t = lap(op_mlp_proj, t);
    }
    layernorm(x + (n - 1) * C, 1, m_.lnf_g_, m_.lnf_b_, h);  // only the last position
    t = lap(op_layernorm, t);
    m_.lm_.forward(h, 1, C, logits_.data(), c.n_vocab, threads_);
    lap(op_lm_head, t);
    len_ += n;
    return logits_;
  }

  /// Wall seconds spent per op since construction (or clear_profile()).
  const std::array<double, op_count>& profile() const { return prof_; }
  /// Process CPU seconds per op (all threads), when enable_cpu_profile() was called:
  /// robust to a busy machine, at ~1 us per op boundary (a system call).
  const std::array<double, op_count>& cpu_profile() const { return cpu_prof_; }
  void enable_cpu_profile() { cpu_profile_ = true; }
  void clear_profile() {
    prof_.fill(0.0);
    cpu_prof_.fill(0.0);
  }

  static double process_cpu() {
#if defined(__unix__)
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
#else
    return 0.0;
#endif
  }

 private:
  using clock = std::chrono::steady_clock;
  static clock::time_point now() { return clock::now(); }
  clock::time_point lap(int o, clock::time_point t0) {
    const auto t1 = now();
    prof_[static_cast<std::size_t>(o)] += std::chrono::duration<double>(t1 - t0).count();
    if (cpu_profile_) {
      const double c = process_cpu();
      cpu_prof_[static_cast<std::size_t>(o)] += c - last_cpu_;
      last_cpu_ = c;
    }
    return t1;
  }
  void grow(i64 n) {
    const config& c = m_.cfg();
    const auto C = static_cast<std::size_t>(c.n_embd), N = static_cast<std::size_t>(n);
    if (x_.size() < N * C) {
      x_.resize(N * C);
      hbuf_.resize(N * C);
      att_.resize(N * C);
      qkv_.resize(N * 3 * C);
      fc_.resize(N * 4 * C);
    }
    if (score_.size() < static_cast<std::size_t>(max_))
      score_.resize(static_cast<std::size_t>(max_));
  }
  void layernorm(const float* x, i64 n, const std::vector<float>& g, const std::vector<float>& b,
                 float* y) const {
    const i64 C = m_.cfg().n_embd;
    for (i64 i = 0; i < n; ++i) {
      const float* r = x + i * C;
      float mean = 0.0f;
      for (i64 j = 0; j < C; ++j) mean += r[j];
      mean /= static_cast<float>(C);
      float var = 0.0f;
      for (i64 j = 0; j < C; ++j) var += (r[j] - mean) * (r[j] - mean);
      const float inv = 1.0f / std::sqrt(var / static_cast<float>(C) + 1e-5f);
      for (i64 j = 0; j < C; ++j)
        y[i * C + j] =
            (r[j] - mean) * inv * g[static_cast<std::size_t>(j)] + b[static_cast<std::size_t>(j)];
    }
  }

  const model& m_;
  int threads_;
  i64 max_ = 0, len_ = 0;
  std::vector<std::vector<float>> k_, v_;
  std::vector<float> x_, hbuf_, att_, qkv_, fc_, score_, logits_;
  std::array<double, op_count> prof_{}, cpu_prof_{};
  bool cpu_profile_ = false;
  double last_cpu_ = 0.0;
};

}  // namespace gpt2
}  // namespace example

#endif  // LOWBIT_EXAMPLES_SUPPORT_GPT2_MODEL_HPP_
