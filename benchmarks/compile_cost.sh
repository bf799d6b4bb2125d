#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Compile cost of lowbit's headers for a user: seconds and peak memory of `g++ -O2 -c`
# on a file holding one #include and an empty main, beside the same file including only
# <Eigen/Dense> (the reference the issue measures against), best of N runs each.
#
#   benchmarks/compile_cost.sh [runs] [extra compiler flags...]
#   e.g. benchmarks/compile_cost.sh 5
#        benchmarks/compile_cost.sh 5 -DLOWBIT_SEPARATE_KERNELS
#        LOWBIT_ROOT=/path/to/other/checkout benchmarks/compile_cost.sh 5
# Seconds are user + system CPU time (less sensitive to a busy machine than wall time).
set -euo pipefail
root=${LOWBIT_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
runs=${1:-3}
shift || true
cxx=${CXX:-g++}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
headers=("Eigen/Dense" "lowbit/gemm.hpp" "lowbit/quantize.hpp" "lowbit/layers/linear.hpp"
         "lowbit/lowbit.hpp" "lowbit/io.hpp")
printf '%-26s %8s %8s %10s\n' header seconds "x Eigen" "peak MB"
eigen_s=""
for h in "${headers[@]}"; do
  case "$h" in lowbit/*) [ -f "$root/include/$h" ] || continue ;; esac
  printf '#include <%s>\nint main() {}\n' "$h" > "$tmp/tu.cpp"
  best=""; best_kb=""
  for _ in $(seq "$runs"); do
    out=$( { /usr/bin/time -f '%e %U %S %M' "$cxx" -std=c++17 -O2 -c "$tmp/tu.cpp" -o "$tmp/tu.o" \
             -I"$root/include" -I/usr/include/eigen3 "$@" >/dev/null; } 2>&1 | tail -n 1)
    read -r _wall user sys kb <<<"$out"
    s=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')
    if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$s; best_kb=$kb; fi
  done
  [ "$h" = "Eigen/Dense" ] && eigen_s=$best
  ratio=$(awk -v a="$best" -v b="$eigen_s" 'BEGIN { printf "%.2f", a / b }')
  printf '%-26s %8s %8s %10d\n' "$h" "$best" "$ratio" $((best_kb / 1024))
done
