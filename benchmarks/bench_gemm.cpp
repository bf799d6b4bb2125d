// SPDX-License-Identifier: Apache-2.0
// bench_gemm.cpp: lowbit::gemm throughput per ISA and weight format, beside an Eigen
// f32 baseline and (when CMake found it) the oneDNN int8 matmul, on the same shapes.
//
// Names (a contract: other tools parse them, keep them exactly):
//   gemm/<isa>/<wtype>/M:<m>/N:<n>/K:<k>/threads:<t>   lowbit, every available isa
//       <wtype> s8      int8 weights, per-channel symmetric
//               s4g128  int4 weights, symmetric, one scale per group of 128 K values
//               s8u7    int8 weights on the 7-bit activations of onednn_u7 (x / 2, all
//                       < 128): tables with a 7-bit route (gemm_kernels().s8_u7) take it
//   gemm/eigen_f32/f32/M:<m>/N:<n>/K:<k>/threads:<t>   Eigen 3.4, float
//   gemm/openblas_f32/f32/M:<m>/N:<n>/K:<k>/threads:<t> OpenBLAS cblas_sgemm, float,
//                                                       row-major (cblas_sgemv at M = 1)
//   gemm/onednn/s8/M:<m>/N:<n>/K:<k>/threads:<t>       oneDNN matmul, u8 x s8 -> f32
//   gemm/onednn_u7/s8/M:<m>/N:<n>/K:<k>/threads:<t>    the same on activations in
//       [0, 127], where oneDNN's AVX2 kernels (vpmaddubsw into a saturating int16)
//       are exact; gemm/onednn/s8 keeps the full-range data and reports "wrong
//       result" where oneDNN saturates (docs/BENCHMARKS.md)
// Counters: "GOPS" and "weight_GBps" (see set_gops); peak/<isa> is in bench_peak.cpp.
// All compute y[M x N] = x[M x K] * W^T + bias with W stored [N x K] (torch Linear):
// lowbit and oneDNN from uint8 activations with a zero point and one per-tensor scale,
// dequantized to f32 (lowbit: epilogue::f32(bias)); Eigen from the same values
// dequantized to float beforehand. Counter "GOPS" = 2*M*N*K per second / 1e9 (also
// for s4: the logical operation count). The label names the ISA whose kernels ran.
//
// Timing: only the GEMM call (oneDNN: execute() + stream.wait()) is in the loop.
// Data (fixed seed), weight packing / reordering, primitive creation and output
// buffers are set up before it and cached between the runs of one configuration
// (google benchmark calls the function once per trial iteration count and per
// repetition). After the loop, once per benchmark, rows 0 and M-1 of the output are
// checked against lowbit::reference::gemm (the oracle); a mismatch fails the
// benchmark with SkipWithError.
//
// Time and names: the names above must stay exact, and google benchmark 1.7.1 appends
// "/min_time:..." and "/real_time" to a name when MinTime() / UseRealTime() are set,
// so neither is used. Instead "GOPS" is computed here from the WALL-CLOCK time of the
// whole timed loop (steady_clock around it, so threads:2 counts every thread's
// work; a kIsIterationInvariantRate counter would divide by the main thread's CPU
// time, which undercounts threaded runs). The "Time" column is wall time per
// iteration either way. Iteration counts follow --benchmark_min_time (default 0.5 s
// of main-thread CPU time; threaded runs take longer in wall time): for a quicker full
// run pass --benchmark_min_time=0.2 (or set BENCHMARK_MIN_TIME=0.2).
//
// Eigen is compiled at the build's baseline (no -march: SSE2 on x86-64; the label
// shows Eigen::SimdInstructionSetsInUse()), while lowbit and oneDNN dispatch at run
// time, so the f32 baseline is an SSE2 one unless the build adds -march flags.
//
// Threads: lowbit: gemm_context::threads (std::thread, or OpenMP if the binary is
// compiled with -fopenmp). Eigen parallelizes only with OpenMP (-fopenmp); without
// it only threads:1 is registered for eigen_f32. oneDNN
// (Debian 2.6 build: DNNL_CPU_THREADING_RUNTIME = OMP, libgomp) takes its thread
// count from omp_get_max_threads() when the primitive is created; this file sets it
// with omp_set_num_threads() looked up with dlsym in the libgomp oneDNN loaded (the
// benchmark itself need not link OpenMP), before creating each primitive.
#include <benchmark/benchmark.h>

#include <Eigen/Dense>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <lowbit/lowbit.hpp>
#include <lowbit/reference.hpp>

#if LOWBIT_BENCH_HAVE_OPENBLAS
#include <cblas.h>  // OpenBLAS's own (openblas_set_num_threads, openblas_get_corename)
#endif
#if LOWBIT_BENCH_HAVE_ONEDNN
#include <dlfcn.h>

#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace {

struct shape {
  std::int64_t m, n, k;
};

// Square shapes; M in {1, 16, 128} (decode, small and larger batches) on three
// transformer-sized (K, N); an MLP 768 -> 512 -> 314 -> 128 -> 64 at M = 4.
std::vector<shape> shapes() {
  std::vector<shape> s;
  for (std::int64_t d : {256, 512, 1024, 2048}) s.push_back({d, d, d});
  const std::pair<std::int64_t, std::int64_t> kn[] = {{4096, 4096}, {768, 3072}, {3072, 768}};
  for (std::int64_t m : {1, 16, 128})
    for (const auto& p : kn) s.push_back({m, p.second, p.first});
  const std::pair<std::int64_t, std::int64_t> mlp[] = {
      {768, 512}, {512, 314}, {314, 128}, {128, 64}};
  for (const auto& p : mlp) s.push_back({4, p.second, p.first});
  return s;
}

constexpr std::int64_t kGroup = 128;  // s4g128

std::string shape_suffix(const shape& s, int threads) {
  return "/M:" + std::to_string(s.m) + "/N:" + std::to_string(s.n) + "/K:" + std::to_string(s.k) +
         "/threads:" + std::to_string(threads);
}

// Wall-clock time of the timed loop (see the file comment).
class wall_timer {
 public:
  wall_timer() : start_(std::chrono::steady_clock::now()) {}
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  std::chrono::steady_clock::time_point start_;
};

// GOPS = 2*M*N*K * iterations / wall seconds / 1e9; weight_GBps = the bytes of the
// weights as the implementation stores them (lowbit: packed panels; oneDNN: N*K int8;
// Eigen: N*K floats) * iterations / wall seconds / 1e9: at M = 1 every weight is read
// once per call, so this is the bandwidth the call achieved.
void set_gops(benchmark::State& st, const shape& s, double wall_seconds, double weight_bytes) {
  const double it = static_cast<double>(st.iterations());
  const double ops = 2.0 * static_cast<double>(s.m * s.n * s.k) * it;
  st.counters["GOPS"] = benchmark::Counter(wall_seconds > 0.0 ? ops / wall_seconds / 1e9 : 0.0);
  st.counters["weight_GBps"] =
      benchmark::Counter(wall_seconds > 0.0 ? weight_bytes * it / wall_seconds / 1e9 : 0.0);
}

// ---------------------------------------------------------------------------------
// The problem: one set of random data per shape, shared by every implementation.

struct problem {
  std::uint64_t id = 0;  // unique per generated problem: the key of the caches below
  shape s{};
  std::vector<std::uint8_t> x;   // [M x K] uint8 activations
  std::int32_t zx = 121;         // activation zero point
  std::vector<std::uint8_t> x7;  // x / 2: the same in [0, 127] (onednn_u7)
  std::int32_t zx7 = 60;
  float sx = 0.02f;                     // per-tensor activation scale
  std::vector<std::int8_t> w8;          // [N x K] int8 in [-127, 127]
  std::vector<float> sw8;               // [N] per-channel scales
  std::vector<std::int8_t> w4;          // [N x K] int4 values in [-8, 7], one per byte
  std::vector<std::uint8_t> w4_packed;  // the same, two per byte (lowbit interchange)
  std::vector<float> sw4;               // [N x K / 128] group scales
  std::vector<float> bias;              // [N]
};

bool s4_supported(const shape& s) { return s.k % kGroup == 0; }

const problem& get_problem(const shape& s) {
  static std::unique_ptr<problem> cached;  // one shape at a time: they run in order
  static std::uint64_t next_id = 1;
  if (cached && cached->s.m == s.m && cached->s.n == s.n && cached->s.k == s.k) return *cached;
  cached.reset();
  auto p = std::make_unique<problem>();
  p->id = next_id++;
  p->s = s;
  std::mt19937 g(static_cast<std::uint32_t>(1234 + s.m * 7 + s.n * 13 + s.k * 17));
  std::uniform_int_distribution<int> u8(0, 255), s8(-127, 127), s4(-8, 7);
  std::uniform_real_distribution<float> scale(0.5f / 127, 2.0f / 127), b(-1.0f, 1.0f);
  p->x.resize(static_cast<std::size_t>(s.m * s.k));
  for (auto& v : p->x) v = static_cast<std::uint8_t>(u8(g));
  p->x7.resize(p->x.size());
  for (std::size_t i = 0; i < p->x.size(); ++i) p->x7[i] = static_cast<std::uint8_t>(p->x[i] / 2);
  p->w8.resize(static_cast<std::size_t>(s.n * s.k));
  for (auto& v : p->w8) v = static_cast<std::int8_t>(s8(g));
  p->sw8.resize(static_cast<std::size_t>(s.n));
  for (auto& v : p->sw8) v = scale(g);
  p->bias.resize(static_cast<std::size_t>(s.n));
  for (auto& v : p->bias) v = b(g);
  if (s4_supported(s)) {
    p->w4.resize(static_cast<std::size_t>(s.n * s.k));
    for (auto& v : p->w4) v = static_cast<std::int8_t>(s4(g));
    p->w4_packed.resize(lowbit::storage_bytes(lowbit::dtype::int4, p->w4.size()));
    lowbit::pack_int4(lowbit::span<const std::int8_t>(p->w4),
                      lowbit::span<std::uint8_t>(p->w4_packed));
    p->sw4.resize(static_cast<std::size_t>(s.n * (s.k / kGroup)));
    for (auto& v : p->sw4) v = scale(g) * 16.0f;
  }
  cached = std::move(p);
  return *cached;
}

// Checks rows 0 and M-1 of y [M x N] (row stride N) against lowbit::reference::gemm
// with the f32 + bias epilogue. Returns an empty string when every element is within
// rel_tol * (largest |value| of its reference row), else what differs.
// u7: the activations are p.x7 (zero point p.zx7) instead of p.x.
std::string check_rows(const problem& p, bool s4, const float* y, double rel_tol, bool u7 = false) {
  const shape& s = p.s;
  lowbit::reference::weights w;
  w.format = s4 ? lowbit::weight_format::s4 : lowbit::weight_format::s8;
  w.values = s4 ? p.w4.data() : p.w8.data();
  w.n = s.n;
  w.k = s.k;
  w.ld = s.k;
  w.group_size = s4 ? kGroup : 0;
  w.scales = s4 ? p.sw4 : p.sw8;
  std::vector<float> ref(static_cast<std::size_t>(s.n));
  for (std::int64_t r : {std::int64_t{0}, s.m - 1}) {
    const auto x = lowbit::activations::u8((u7 ? p.x7 : p.x).data() + r * s.k, 1, s.k, s.k,
                                           u7 ? p.zx7 : p.zx, lowbit::span<const float>(&p.sx, 1));
    lowbit::reference::gemm(x, w, lowbit::epilogue::f32(lowbit::span<const float>(p.bias)),
                            lowbit::output(ref.data(), s.n));
    double row_max = 0.0;
    for (float v : ref) row_max = std::max(row_max, static_cast<double>(std::abs(v)));
    const float* yr = y + r * s.n;
    for (std::int64_t n = 0; n < s.n; ++n) {
      const float want = ref[static_cast<std::size_t>(n)];
      if (!(std::abs(static_cast<double>(yr[n]) - want) <= rel_tol * row_max)) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "wrong result: y[%lld][%lld] = %.9g, reference %.9g",
                      static_cast<long long>(r), static_cast<long long>(n),
                      static_cast<double>(yr[n]), static_cast<double>(want));
        return buf;
      }
    }
  }
  return {};
}

// Each benchmark's output is verified once (the first run of that name); a name that
// failed fails again on every later run (repetitions): google benchmark 1.7.1 aborts
// (std::bad_alloc) when it aggregates repetitions of which only some were skipped.
void check_after_loop(benchmark::State& st, const std::string& name, const problem& p, bool s4,
                      const float* y, double rel_tol, bool u7 = false) {
  static std::set<std::string> checked;
  static std::unordered_map<std::string, std::string> failed;
  if (const auto f = failed.find(name); f != failed.end()) {
    st.SkipWithError(f->second.c_str());
    return;
  }
  if (!checked.insert(name).second) return;
  const std::string err = check_rows(p, s4, y, rel_tol, u7);
  if (!err.empty()) {
    const std::string& msg = failed[name] = name + ": " + err;
    st.SkipWithError(msg.c_str());
  }
}

// ---------------------------------------------------------------------------------
// lowbit

// The kernels gemm() runs for weights packed for `level`: the names in its kernel
// table (arch/<isa>/kernels.hpp; amx_int8's table holds the AVX-512 VNNI kernels until
// the AMX tile kernel lands).
std::string kernels_label(lowbit::isa level, bool s4, bool u7, std::int64_t m) {
  const lowbit::gemm_kernel_names k = lowbit::gemm_kernels(level);
  const bool wide = !s4 && k.s8_wide != nullptr && m >= k.s8_wide_min_rows;
  return std::string(lowbit::to_string(level)) + ": " +
         (s4                         ? k.s4
          : u7 && k.s8_u7 != nullptr ? k.s8_u7
          : wide                     ? k.s8_wide
                                     : k.s8);
}

const lowbit::packed_weights& get_packed(const problem& p, lowbit::isa level, bool s4) {
  struct entry {
    std::uint64_t problem_id;
    lowbit::isa level;
    bool s4;
    lowbit::packed_weights w;
  };
  static std::unique_ptr<entry> cached;
  const shape& s = p.s;
  if (cached && cached->problem_id == p.id && cached->level == level && cached->s4 == s4)
    return cached->w;
  cached.reset();
  auto w = s4 ? lowbit::packed_weights::pack_s4(p.w4_packed.data(), s.n, s.k, kGroup,
                                                lowbit::span<const float>(p.sw4), level)
              : lowbit::packed_weights::pack_s8(p.w8.data(), s.n, s.k, s.k,
                                                lowbit::span<const float>(p.sw8), {}, level);
  cached.reset(new entry{p.id, level, s4, std::move(w)});
  return cached->w;
}

void bm_lowbit(benchmark::State& st, std::string name, shape s, lowbit::isa level, bool s4, bool u7,
               int threads) {
  try {
    const problem& p = get_problem(s);
    const lowbit::packed_weights& w = get_packed(p, level, s4);
    const auto x = lowbit::activations::u8((u7 ? p.x7 : p.x).data(), s.m, s.k, s.k,
                                           u7 ? p.zx7 : p.zx, lowbit::span<const float>(&p.sx, 1));
    const auto e = lowbit::epilogue::f32(lowbit::span<const float>(p.bias));
    std::vector<float> y(static_cast<std::size_t>(s.m * s.n));
    lowbit::gemm_context ctx;
    ctx.threads = threads;
    const wall_timer wall;
    for (auto _ : st) {
      lowbit::gemm(x, w, e, lowbit::output(y.data(), s.n), ctx);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    set_gops(st, s, wall.seconds(), static_cast<double>(w.panels() * w.panel_bytes()));
    st.SetLabel(kernels_label(w.level(), s4, u7, s.m) + " w=" + (s4 ? "s4g128" : "s8") +
                (u7 ? " x=u7" : ""));
    check_after_loop(st, name, p, s4, y.data(), 1e-5, u7);
  } catch (const std::exception& ex) {
    st.SkipWithError(ex.what());
  }
}

// ---------------------------------------------------------------------------------
// Eigen f32: y = x * W^T + bias, row-major, on the dequantized values.

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

#if defined(EIGEN_HAS_OPENMP)
constexpr bool kEigenThreads = true;
#else
constexpr bool kEigenThreads = false;  // Eigen's GEMM is parallel only with -fopenmp
#endif

std::string eigen_version() {
  return "eigen " + std::to_string(EIGEN_WORLD_VERSION) + "." +
         std::to_string(EIGEN_MAJOR_VERSION) + "." + std::to_string(EIGEN_MINOR_VERSION);
}

void bm_eigen(benchmark::State& st, std::string name, shape s, int threads) {
  try {
    const problem& p = get_problem(s);
    row_matrix x(s.m, s.k), w(s.n, s.k), y(s.m, s.n);
    Eigen::RowVectorXf bias(s.n);
    for (std::int64_t m = 0; m < s.m; ++m)
      for (std::int64_t k = 0; k < s.k; ++k)
        x(m, k) = p.sx * static_cast<float>(p.x[static_cast<std::size_t>(m * s.k + k)] - p.zx);
    for (std::int64_t n = 0; n < s.n; ++n) {
      bias(n) = p.bias[static_cast<std::size_t>(n)];
      for (std::int64_t k = 0; k < s.k; ++k)
        w(n, k) = p.sw8[static_cast<std::size_t>(n)] *
                  static_cast<float>(p.w8[static_cast<std::size_t>(n * s.k + k)]);
    }
    Eigen::setNbThreads(threads);
    const wall_timer wall;
    for (auto _ : st) {
      y.noalias() = x * w.transpose();
      y.rowwise() += bias;
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    const double seconds = wall.seconds();
    Eigen::setNbThreads(1);
    set_gops(st, s, seconds, 4.0 * static_cast<double>(s.n * s.k));
    st.SetLabel(eigen_version() + " f32 " + Eigen::SimdInstructionSetsInUse());
    check_after_loop(st, name, p, false, y.data(), 1e-3);
  } catch (const std::exception& ex) {
    st.SkipWithError(ex.what());
  }
}

// ---------------------------------------------------------------------------------
// OpenBLAS f32 (Debian libopenblas-dev, when CMake found it): what a C++ user of this
// machine calls for float: y = x * W^T + bias with cblas_sgemm (row-major, W [N x K]
// transposed in the call), or cblas_sgemv at M = 1 (OpenBLAS's GEMM at M = 1 is slower
// than its GEMV). OpenBLAS picks its kernels for the CPU at run time
// (OPENBLAS_CORETYPE=Haswell caps them); the label shows the core it chose. Threads:
// openblas_set_num_threads. The bias is copied into y before each call (beta = 1).

#if LOWBIT_BENCH_HAVE_OPENBLAS

void bm_openblas(benchmark::State& st, std::string name, shape s, int threads) {
  try {
    const problem& p = get_problem(s);
    std::vector<float> x(static_cast<std::size_t>(s.m * s.k)),
        w(static_cast<std::size_t>(s.n * s.k));
    std::vector<float> y(static_cast<std::size_t>(s.m * s.n));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = p.sx * static_cast<float>(p.x[i] - p.zx);
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t k = 0; k < s.k; ++k)
        w[static_cast<std::size_t>(n * s.k + k)] =
            p.sw8[static_cast<std::size_t>(n)] *
            static_cast<float>(p.w8[static_cast<std::size_t>(n * s.k + k)]);
    openblas_set_num_threads(threads);
    const auto M = static_cast<blasint>(s.m), N = static_cast<blasint>(s.n),
               K = static_cast<blasint>(s.k);
    const wall_timer wall;
    for (auto _ : st) {
      for (std::int64_t m = 0; m < s.m; ++m)
        std::memcpy(y.data() + m * s.n, p.bias.data(), static_cast<std::size_t>(s.n) * 4);
      if (s.m == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, N, K, 1.0f, w.data(), K, x.data(), 1, 1.0f,
                    y.data(), 1);
      else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x.data(), K, w.data(),
                    K, 1.0f, y.data(), N);
      benchmark::DoNotOptimize(y.data());
      benchmark::ClobberMemory();
    }
    const double seconds = wall.seconds();
    set_gops(st, s, seconds, 4.0 * static_cast<double>(s.n * s.k));
    st.SetLabel(std::string("openblas ") + openblas_get_corename() +
                (s.m == 1 ? " sgemv" : " sgemm") + " threads=" + std::to_string(threads));
    check_after_loop(st, name, p, false, y.data(), 1e-3);
  } catch (const std::exception& ex) {
    st.SkipWithError(ex.what());
  }
}

#endif  // LOWBIT_BENCH_HAVE_OPENBLAS

// ---------------------------------------------------------------------------------
// oneDNN: matmul, src u8 [M x K] with a zero point, weights s8 [K x N] (W^T: our
// [N x K] buffer is the {K, N} tensor in format_tag::ba), reordered once into the
// layout the primitive chose (format_tag::any); per-channel output scales
// sx * sw[n] (2.6 API: primitive_attr::set_output_scales, mask 1 << 1); f32 bias;
// f32 dst. oneDNN 2.x int8 applies the bias BEFORE the output scales
// (dst = scale * (acc + bias)), so it gets bias[n] / (sx * sw[n]) to compute the same
// y as lowbit (checked after the loop like the others).

#if LOWBIT_BENCH_HAVE_ONEDNN

const char* onednn_isa_name(dnnl::cpu_isa i) {
  switch (i) {
    case dnnl::cpu_isa::all:
      return "all";
    case dnnl::cpu_isa::sse41:
      return "sse41";
    case dnnl::cpu_isa::avx:
      return "avx";
    case dnnl::cpu_isa::avx2:
      return "avx2";
    case dnnl::cpu_isa::avx512_mic:
      return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core:
      return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "avx512_core_amx";
    case dnnl::cpu_isa::avx2_vnni:
      return "avx2_vnni";
  }
  return "?";
}

const char* onednn_runtime_name(unsigned r) {
  switch (r) {
    case DNNL_RUNTIME_SEQ:
      return "seq";
    case DNNL_RUNTIME_OMP:
      return "omp";
    case DNNL_RUNTIME_TBB:
      return "tbb";
    case DNNL_RUNTIME_THREADPOOL:
      return "threadpool";
    default:
      return "?";
  }
}

// omp_set_num_threads / omp_get_max_threads of the OpenMP runtime oneDNN uses
// (the Debian build links libgomp), found at run time: no OpenMP link needed here.
struct omp_api {
  void (*set_num_threads)(int) = nullptr;
  int (*get_max_threads)() = nullptr;
};

template <class F>
F lookup(void* handle, const char* symbol) {
  void* p = dlsym(handle, symbol);
  F f = nullptr;
  static_assert(sizeof f == sizeof p, "function and object pointers differ in size");
  std::memcpy(&f, &p, sizeof f);
  return f;
}

const omp_api& onednn_omp() {
  static const omp_api api = [] {
    omp_api a;
#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
    void* h = dlopen("libgomp.so.1", RTLD_LAZY | RTLD_NOLOAD);
    if (h == nullptr) h = RTLD_DEFAULT;
    a.set_num_threads = lookup<void (*)(int)>(h, "omp_set_num_threads");
    a.get_max_threads = lookup<int (*)()>(h, "omp_get_max_threads");
#endif
    return a;
  }();
  return api;
}

bool onednn_threads_controllable() {
  return onednn_omp().set_num_threads != nullptr && onednn_omp().get_max_threads != nullptr;
}

// "onednn 2.6.3 omp": version and CPU threading runtime of the loaded library.
std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch) + " " + onednn_runtime_name(v->cpu_runtime);
}

struct onednn_setup {
  std::uint64_t problem_id = 0;
  int threads = 0;
  bool u7 = false;
  dnnl::engine eng;
  dnnl::stream strm;
  dnnl::memory src, wei, bias, dst;
  dnnl::matmul prim;
  std::vector<float> bias_pre;  // bias / (sx * sw)
  std::vector<float> y;
  std::string label;
};

const onednn_setup& get_onednn(const problem& p, int threads, bool u7) {
  static std::unique_ptr<onednn_setup> cached;
  const shape& s = p.s;
  if (cached && cached->problem_id == p.id && cached->threads == threads && cached->u7 == u7)
    return *cached;
  cached.reset();
  if (threads > 1 && !onednn_threads_controllable())
    throw std::runtime_error("cannot set oneDNN's thread count");
  if (onednn_threads_controllable()) onednn_omp().set_num_threads(threads);

  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto o = std::make_unique<onednn_setup>();
  o->problem_id = p.id;
  o->threads = threads;
  o->u7 = u7;
  o->eng = dnnl::engine(dnnl::engine::kind::cpu, 0);
  o->strm = dnnl::stream(o->eng);
  const dnnl::memory::desc src_md({s.m, s.k}, dt::u8, tag::ab);
  const dnnl::memory::desc wei_any({s.k, s.n}, dt::s8, tag::any);
  const dnnl::memory::desc wei_user({s.k, s.n}, dt::s8, tag::ba);
  const dnnl::memory::desc bias_md({1, s.n}, dt::f32, tag::ab);
  const dnnl::memory::desc dst_md({s.m, s.n}, dt::f32, tag::ab);

  std::vector<float> scales(static_cast<std::size_t>(s.n));
  o->bias_pre.resize(static_cast<std::size_t>(s.n));
  for (std::size_t n = 0; n < scales.size(); ++n) {
    scales[n] = p.sx * p.sw8[n];
    o->bias_pre[n] = p.bias[n] / scales[n];
  }
  dnnl::primitive_attr attr;
  attr.set_output_scales(1 << 1, scales);
  attr.set_zero_points(DNNL_ARG_SRC, 0, {u7 ? p.zx7 : p.zx});
  const dnnl::matmul::desc desc(src_md, wei_any, bias_md, dst_md);
  const dnnl::matmul::primitive_desc pd(desc, attr, o->eng);

  // The weights: user layout -> the primitive's layout, once.
  dnnl::memory user_wei(wei_user, o->eng, const_cast<std::int8_t*>(p.w8.data()));
  o->wei = dnnl::memory(pd.weights_desc(), o->eng);
  dnnl::reorder(user_wei, o->wei).execute(o->strm, user_wei, o->wei);
  o->strm.wait();

  o->y.resize(static_cast<std::size_t>(s.m * s.n));
  o->src = dnnl::memory(src_md, o->eng, const_cast<std::uint8_t*>((u7 ? p.x7 : p.x).data()));
  o->bias = dnnl::memory(bias_md, o->eng, o->bias_pre.data());
  o->dst = dnnl::memory(dst_md, o->eng, o->y.data());
  o->prim = dnnl::matmul(pd);

  o->label =
      onednn_version() +
      (onednn_threads_controllable() ? ":" + std::to_string(onednn_omp().get_max_threads()) + "thr"
                                     : std::string()) +
      " impl=" + pd.impl_info_str() + " isa=" + onednn_isa_name(dnnl::get_effective_cpu_isa());
  cached = std::move(o);
  return *cached;
}

void bm_onednn(benchmark::State& st, std::string name, shape s, int threads, bool u7) {
  try {
    const problem& p = get_problem(s);
    const onednn_setup& o = get_onednn(p, threads, u7);
    const std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, o.src},
                                                        {DNNL_ARG_WEIGHTS, o.wei},
                                                        {DNNL_ARG_BIAS, o.bias},
                                                        {DNNL_ARG_DST, o.dst}};
    dnnl::stream strm = o.strm;
    const wall_timer wall;
    for (auto _ : st) {
      o.prim.execute(strm, args);
      strm.wait();
      benchmark::ClobberMemory();
    }
    set_gops(st, s, wall.seconds(), static_cast<double>(s.n * s.k));
    st.SetLabel(o.label);
    check_after_loop(st, name, p, false, o.y.data(), 1e-4, u7);
  } catch (const std::exception& ex) {
    st.SkipWithError(ex.what());
  }
}

#endif  // LOWBIT_BENCH_HAVE_ONEDNN

// ---------------------------------------------------------------------------------

// No MinTime / UseRealTime: they would change the names (see the file comment).
benchmark::internal::Benchmark* configure(benchmark::internal::Benchmark* b) {
  return b->Unit(benchmark::kMicrosecond);
}

const int registered = [] {
  for (const shape& s : shapes()) {
    for (lowbit::isa i : lowbit::available_isas()) {
      const std::string is = lowbit::to_string(i);
      for (int wt = 0; wt < 3; ++wt) {  // s8, s4g128, s8u7
        const bool s4 = wt == 1, u7 = wt == 2;
        if (s4 && !s4_supported(s)) continue;  // s4g128 needs K % 128 == 0: no K = 314
        for (int t : {1, 2}) {
          const std::string name = "gemm/" + is +
                                   (s4   ? "/s4g128"
                                    : u7 ? "/s8u7"
                                         : "/s8") +
                                   shape_suffix(s, t);
          configure(benchmark::RegisterBenchmark(name.c_str(), bm_lowbit, name, s, i, s4, u7, t));
        }
      }
    }
    for (int t : {1, 2}) {
      if (t > 1 && !kEigenThreads) continue;
      const std::string name = "gemm/eigen_f32/f32" + shape_suffix(s, t);
      configure(benchmark::RegisterBenchmark(name.c_str(), bm_eigen, name, s, t));
    }
#if LOWBIT_BENCH_HAVE_ONEDNN
    for (int t : {1, 2}) {
      if (t > 1 && !onednn_threads_controllable()) continue;
      for (bool u7 : {false, true}) {
        const std::string name = (u7 ? "gemm/onednn_u7/s8" : "gemm/onednn/s8") + shape_suffix(s, t);
        configure(benchmark::RegisterBenchmark(name.c_str(), bm_onednn, name, s, t, u7));
      }
    }
#endif
#if LOWBIT_BENCH_HAVE_OPENBLAS
    for (int t : {1, 2}) {
      const std::string name = "gemm/openblas_f32/f32" + shape_suffix(s, t);
      configure(benchmark::RegisterBenchmark(name.c_str(), bm_openblas, name, s, t));
    }
#endif
  }
  benchmark::AddCustomContext("lowbit_gemm_cpu", lowbit::describe_cpu());
#if LOWBIT_BENCH_HAVE_OPENBLAS
  benchmark::AddCustomContext(
      "gemm_openblas", std::string(openblas_get_config()) + ", core " + openblas_get_corename());
#endif
  benchmark::AddCustomContext("gemm_eigen",
                              eigen_version() + " f32, SIMD " + Eigen::SimdInstructionSetsInUse() +
                                  (kEigenThreads ? ", OpenMP" : ", no OpenMP: threads:1 only"));
#if LOWBIT_BENCH_HAVE_ONEDNN
  benchmark::AddCustomContext(
      "gemm_onednn",
      onednn_version() + ", effective isa " + onednn_isa_name(dnnl::get_effective_cpu_isa()) +
          (onednn_threads_controllable() ? ", threads via omp_set_num_threads"
                                         : ", thread count not controllable: threads:1 only"));
#endif
  return 0;
}();

}  // namespace
