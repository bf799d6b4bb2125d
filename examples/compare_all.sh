#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# examples/compare_all.sh BUILD_DIR [OUT_DIR]: the README's main command. Runs the three
# FP32-vs-INT8-vs-INT4 comparisons in sequence (mlp_compare, fashion_mnist, gpt2_generate),
# leaves their Markdown tables and SVG charts in OUT_DIR (default lowbit-results), and
# writes OUT_DIR/SUMMARY.md, the three tables one after the other.
# fashion_mnist trains its FP32 and QAT models on the first run (about a minute on 2
# cores) and reuses them from OUT_DIR/cache afterwards.
set -euo pipefail
build=${1:?usage: examples/compare_all.sh BUILD_DIR [OUT_DIR]}
out=${2:-lowbit-results}
for ex in mlp_compare fashion_mnist gpt2_generate; do
  if [ ! -x "$build/examples/$ex" ]; then
    echo "compare_all.sh: $build/examples/$ex not found: build it first" \
         "(cmake --build $build --target mlp_compare fashion_mnist gpt2_generate)" >&2
    exit 1
  fi
done
mkdir -p "$out"
t0=$(date +%s)
run() {
  local name=$1; shift
  printf '\n==================== %s ====================\n' "$name"
  local s=$(date +%s)
  "$build/examples/$name" --out "$out" "$@"
  printf '(%s took %ss)\n' "$name" "$(( $(date +%s) - s ))"
}
run mlp_compare
run fashion_mnist
run gpt2_generate

{
  echo "# lowbit: FP32 vs INT8 vs INT4 on this machine"
  echo
  echo "$("$build/examples/list_isas" | sed -n '1,2p' | tr '\n' ' ')"
  echo
  for f in mlp_compare fashion_mnist gpt2_generate; do
    [ -f "$out/$f.md" ] && { cat "$out/$f.md"; echo; }
  done
} > "$out/SUMMARY.md"

printf '\n==================== summary ====================\n'
printf 'all three comparisons ran in %ss\n' "$(( $(date +%s) - t0 ))"
printf 'tables: %s\n' "$(cd "$out" && ls ./*.md | tr '\n' ' ')"
printf 'charts: %s\n' "$(cd "$out" && ls ./*.svg | tr '\n' ' ')"
printf 'combined: %s/SUMMARY.md\n' "$out"
