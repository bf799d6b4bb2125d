#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Turns lowbit_bench JSON (gemm/... and peak/... benchmarks) into the GEMM table of
docs/BENCHMARKS.md: medians of GOPS per shape and thread count, with the ratios
lowbit / oneDNN and lowbit / Eigen taken from the same run, and the share of the
vpdpbusd peak (peak/avx512_vnni, times the thread count).

    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI build/benchmarks/lowbit_bench \\
        --benchmark_filter='...' --benchmark_repetitions=5 \\
        --benchmark_report_aggregates_only=true --benchmark_format=json > gemm.json
    python3 benchmarks/gemm_table.py gemm.json [more.json ...]

--avx2 prints the AVX2 table instead (lowbit avx2 s8 / s8u7 / s4g128 beside oneDNN
u7 and full-range, OpenBLAS and Eigen f32); run the benchmark for it with
LOWBIT_MAX_ISA=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell on a CPU that
has more than AVX2.

With several files (separate runs of the same command), each cell is the median of
the runs' medians: on a shared machine one run can land in a noisy minute.
Only the standard library; benchmark names are parsed by the contract in
bench_gemm.cpp (gemm/<impl>/<wtype>/M:<m>/N:<n>/K:<k>/threads:<t>).
"""
import json
import re
import statistics
import sys

NAME = re.compile(r"^gemm/([a-z0-9_]+)/([a-z0-9]+)/M:(\d+)/N:(\d+)/K:(\d+)/threads:(\d+)$")


def load(path):
    with open(path) as f:
        doc = json.load(f)
    gops, gbps, peak, labels = {}, {}, {}, {}
    for b in doc["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        if name.startswith("peak/"):
            peak[name] = b["GOPS"]
            continue
        m = NAME.match(name)
        if not m:
            continue
        impl, wtype, M, N, K, t = m.groups()
        key = (int(M), int(N), int(K), int(t))
        gops[(impl, wtype) + key] = b["GOPS"]
        gbps[(impl, wtype) + key] = b.get("weight_GBps", 0.0)
        labels[impl] = b.get("label", "")
    return doc.get("context", {}), gops, gbps, peak


def merge(runs):
    """Per key, the median over the runs that have it."""
    keys = set().union(*runs)
    return {k: statistics.median([r[k] for r in runs if k in r]) for k in keys}


def avx2_table(context, gops, gbps):
    """The AVX2 table of docs/BENCHMARKS.md: lowbit's avx2 rows beside the peers a user
    of an AVX2 machine would pick, ratios from the same run."""
    shapes = sorted({k[2:] for k in gops}, key=lambda s: (-s[0] * s[1] * s[2], s[3]))
    cols = [("avx2", "s8"), ("avx2", "s8u7"), ("avx2", "s4g128"), ("onednn_u7", "s8"),
            ("onednn", "s8"), ("openblas_f32", "f32"), ("eigen_f32", "f32")]
    head = ["shape", "threads"] + [f"{i} {w}" for i, w in cols]
    head += ["s8 / oneDNN u7", "s8u7 / oneDNN u7", "s8 / OpenBLAS", "s4 / s8", "2 thr / 1 thr (s8)"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "—"
    for M, N, K, t in shapes:
        g = lambda i, w, tt=t: gops.get((i, w, M, N, K, tt))
        vals = [g(i, w) for i, w in cols]
        row = [f"M:{M} N:{N} K:{K}", str(t)]
        for (i, w), v in zip(cols, vals):
            row.append(f"{v:.1f}" if v is not None else ("wrong/—" if i == "onednn" else "—"))
        s8, s8u7, s4 = g("avx2", "s8"), g("avx2", "s8u7"), g("avx2", "s4g128")
        u7, blas = g("onednn_u7", "s8"), g("openblas_f32", "f32")
        scale = ratio(g("avx2", "s8", 2), g("avx2", "s8", 1)) if t == 2 else ""
        row += [ratio(s8, u7), ratio(s8u7, u7), ratio(s8, blas), ratio(s4, s8), scale]
        print("| " + " | ".join(row) + " |")
    for key in ("lowbit_gemm_cpu", "gemm_onednn", "gemm_openblas", "gemm_eigen"):
        if key in context:
            print(f"\n{key}: {context[key]}")


def main():
    args = sys.argv[1:]
    avx2 = "--avx2" in args
    args = [a for a in args if a != "--avx2"]
    if not args:
        sys.exit("usage: gemm_table.py [--avx2] RESULTS.json [MORE.json ...]")
    loaded = [load(path) for path in args]
    if avx2:
        context = loaded[0][0]
        gops, gbps = (merge([run[i] for run in loaded]) for i in (1, 2))
        print(f"{len(loaded)} run(s); each cell is the median over them of the run's median")
        avx2_table(context, gops, gbps)
        return
    context = loaded[0][0]
    gops, gbps, peak = (merge([run[i] for run in loaded]) for i in (1, 2, 3))
    print(f"{len(loaded)} run(s); each cell is the median over them of the run's median")
    shapes = sorted({k[2:] for k in gops}, key=lambda s: (-s[0] * s[1] * s[2], s[3]))
    impls = sorted({k[:2] for k in gops})
    for name, value in sorted(peak.items()):
        print(f"- `{name}`: {value:.1f} GOPS")
    cols = [("eigen_f32", "f32"), ("onednn", "s8"), ("avx2", "s8"), ("avx512_vnni", "s8"),
            ("avx512_vnni", "s4g128")]
    cols = [c for c in cols if c in impls]
    head = ["shape", "threads"] + [f"{i} {w}" for i, w in cols]
    head += ["VNNI s8 / oneDNN", "VNNI s8 / Eigen", "VNNI s8 / peak", "s4 / s8 (VNNI)",
             "VNNI s8 weight GB/s"]
    vnni_peak = peak.get("peak/avx512_vnni")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))

    def cell(v):
        return f"{v:.1f}" if v is not None else "—"

    for M, N, K, t in shapes:
        vals = [gops.get(c + (M, N, K, t)) for c in cols]
        s8 = gops.get(("avx512_vnni", "s8", M, N, K, t))
        s4 = gops.get(("avx512_vnni", "s4g128", M, N, K, t))
        dnnl = gops.get(("onednn", "s8", M, N, K, t))
        eig = gops.get(("eigen_f32", "f32", M, N, K, t))
        ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "—"
        row = [f"M:{M} N:{N} K:{K}", str(t)] + [cell(v) for v in vals]
        pk = f"{100 * s8 / (t * vnni_peak):.0f}%" if s8 and vnni_peak else "—"
        row += [ratio(s8, dnnl), ratio(s8, eig), pk, ratio(s4, s8),
                cell(gbps.get(("avx512_vnni", "s8", M, N, K, t)))]
        print("| " + " | ".join(row) + " |")
    for key in ("lowbit_gemm_cpu", "gemm_onednn", "gemm_eigen"):
        if key in context:
            print(f"\n{key}: {context[key]}")


if __name__ == "__main__":
    main()
