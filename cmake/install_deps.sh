#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian 12 packages lowbit's build, tests, benchmarks and examples need.
#
#   cmake/install_deps.sh            # library + tests + examples + benchmarks
#   cmake/install_deps.sh --peers    # ... plus oneDNN (libdnnl-dev), the benchmark peer
#   cmake/install_deps.sh --clang    # ... plus clang (the second compiler CI uses)
#
# Idempotent: packages already installed are left alone, and when nothing is
# missing the script touches nothing (no apt-get update either).
# Fails with a clear message when it cannot install: no apt-get, or neither
# root nor a working passwordless sudo.
set -euo pipefail

packages=(libeigen3-dev libxsimd-dev catch2 libbenchmark-dev zlib1g-dev
          nlohmann-json3-dev dataset-fashion-mnist cmake g++ make)
for arg in "$@"; do
  case "$arg" in
    --peers) packages+=(libdnnl-dev) ;;
    --clang) packages+=(clang) ;;
    -h|--help) sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install_deps.sh: unknown option '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps.sh: all ${#packages[@]} packages already installed"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_deps.sh: missing packages (${missing[*]}) and no apt-get on this system;" >&2
  echo "  lowbit's installer supports Debian 12 / Ubuntu. Install the equivalents by hand." >&2
  exit 1
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo_cmd=(sudo env DEBIAN_FRONTEND=noninteractive)
  else
    echo "install_deps.sh: missing packages (${missing[*]}) but not running as root" >&2
    echo "  and sudo is not installed: rerun as root." >&2
    exit 1
  fi
fi

echo "install_deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo_cmd[@]}" apt-get update -qq; then
  echo "install_deps.sh: 'apt-get update' failed (see above): cannot install ${missing[*]}" >&2
  exit 1
fi
if ! "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "install_deps.sh: 'apt-get install ${missing[*]}' failed (see above)" >&2
  exit 1
fi
echo "install_deps.sh: done"
