#!/usr/bin/env bash
# Installs every Debian package forkserver needs (Debian 12). Idempotent:
# quiet and quick when everything is already there. Runs apt as root, via
# sudo when not root.
set -euo pipefail

packages=(
  bazel-bootstrap        # Bazel 4.2.3, the one that installs offline
  bazel-rules-java       # @rules_java for Bazel 4's registered toolchains
  g++
  libabsl-dev            # Abseil 20220623
  libprotobuf-dev        # Protobuf 3.21.12 ...
  protobuf-compiler      # ... and its protoc
  libboost1.81-dev       # Boost.Process v2 (1.74 has none)
  libgtest-dev
  libgmock-dev
  libbenchmark-dev
  zlib1g-dev             # static libprotobuf needs -lz
  clang-14               # libFuzzer builds (scripts/fuzz.sh)
  libclang-rt-14-dev
  python3                # benchmarks against multiprocessing ...
  python3-billiard       # ... and billiard
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
      grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "setup: installing ${missing[*]}" >&2
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null
