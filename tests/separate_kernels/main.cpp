// SPDX-License-Identifier: Apache-2.0
// A program built with LOWBIT_SEPARATE_KERNELS: this TU includes the whole core and the
// layers but compiles no kernel (kernels.cpp does). Checks that no intrinsics header
// reached it, and that GEMM, layers and quantize give the reference's results on every
// ISA this CPU runs.
#include <cstdio>
#include <cstring>
#include <vector>

#include <lowbit/lowbit.hpp>

#if defined(_IMMINTRIN_H_INCLUDED) || defined(__IMMINTRIN_H)
#error "LOWBIT_SEPARATE_KERNELS: a kernel header (immintrin.h) reached a user TU"
#endif

namespace {
int failures = 0;
void check(bool ok, const char* what, lowbit::isa i) {
  if (!ok) {
    ++failures;
    std::printf("FAILED: %s on %s\n", what, lowbit::to_string(i));
  }
}
}  // namespace

int main() {
  const std::int64_t M = 5, N = 37, K = 96;
  std::vector<std::int8_t> w(static_cast<std::size_t>(N * K));
  std::vector<std::uint8_t> x(static_cast<std::size_t>(M * K));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int8_t>((i * 37) % 256);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<std::uint8_t>((i * 91 + 7) % 256);
  const std::vector<float> sw(static_cast<std::size_t>(N), 0.01f), sx = {0.02f};
  const lowbit::matrixf wf = lowbit::matrixf::Random(N, K), xf = lowbit::matrixf::Random(M, K);
  int isas = 0;
  for (lowbit::isa i : lowbit::all_isas) {
    if (!lowbit::is_available(i)) {
      std::printf("isa %s not available on this CPU/OS: not tested here\n", lowbit::to_string(i));
      continue;
    }
    ++isas;
    lowbit::set_max_isa(i);
    // GEMM, f32 epilogue, against the reference
    const auto pw =
        lowbit::packed_weights::pack_s8(w.data(), N, K, K, lowbit::span<const float>(sw));
    const auto a = lowbit::activations::u8(x.data(), M, K, K, 120, lowbit::span<const float>(sx));
    std::vector<float> y(static_cast<std::size_t>(M * N)), r(y.size());
    lowbit::gemm(a, pw, lowbit::epilogue::f32(), lowbit::output(y.data(), N));
    lowbit::reference::weights rw;
    rw.values = w.data();
    rw.n = N;
    rw.k = K;
    rw.ld = K;
    rw.scales = sw;
    lowbit::reference::gemm(a, rw, lowbit::epilogue::f32(), lowbit::output(r.data(), N));
    check(std::memcmp(y.data(), r.data(), y.size() * sizeof(float)) == 0, "gemm f32", i);
    check(pw.level() == i, "packed for the capped isa", i);
    // quantize against the reference
    const auto p = lowbit::choose_qparams(-1.0f, 1.0f, lowbit::qparams_options::affine());
    const auto q = lowbit::quantize(lowbit::view(xf), p);
    std::vector<std::uint8_t> rq(q.data.size());
    lowbit::reference::quantize(lowbit::view(xf), p, rq.data(), false);
    check(q.data == rq, "quantize", i);
    // a layer: runs, and keeps its isa
    const auto l = lowbit::quantized_linear::dynamic(lowbit::view(wf));
    const lowbit::matrixf yl = l(xf);
    check(l.isa() == i && yl.rows() == M && yl.cols() == N, "dynamic layer", i);
    lowbit::reset_max_isa();
  }
  std::printf("separate kernels: %d isas checked, %d failures\n", isas, failures);
  return failures == 0 ? 0 : 1;
}
