#!/usr/bin/env bash
# Installs every Debian package forkserver needs (Debian 12). Idempotent:
# quiet and quick when everything is already there. Runs apt as root, via
# sudo when not root.
#
#   scripts/setup.sh          the packages
#   scripts/setup.sh --tsan   also Abseil's Debian source, for --config=tsan
#                             (see abseil_source below)
set -euo pipefail

tsan=0
case "${1:-}" in
  "") ;;
  --tsan) tsan=1 ;;
  *) echo "usage: scripts/setup.sh [--tsan]" >&2; exit 2 ;;
esac

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
  python3-matplotlib     # scripts/bench.sh's plots
  libseccomp-dev         # sandbox: seccomp filters
  libcap-dev             # sandbox: capabilities
  bubblewrap             # sandbox benchmark peers ...
  firejail               # ... and comparison tests
  uidmap                 # setpriv/newuidmap for unprivileged sandbox tests
  redis-server           # Celery worker: the real broker, started by tests
  libhiredis-dev         # Celery worker: Redis client
  nlohmann-json3-dev     # Celery worker: JSON messages
  python3-celery         # Celery worker: the real Python client in tests
  python3-redis          # ... and its Redis transport
)

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

# Debian's Abseil source package, unpacked (Debian's patches applied) into
# a cache outside the repository, for the ThreadSanitizer build: the binary
# libabsl-dev is not built with -fsanitize=thread, so TSan cannot see
# absl::Mutex's synchronisation. Abseil ships Bazel BUILD files, and
# @com_google_absl (third_party/absl_source.bzl) finds the tree at
# $FORKSERVER_ABSL_SRC, or at ~/.cache/forkserver/abseil-src/current.
# Needs a deb-src entry for Debian's archive; one is added (once) only here.
abseil_source() {
  local cache="${HOME}/.cache/forkserver/abseil-src"
  if [ -n "${FORKSERVER_ABSL_SRC:-}" ]; then
    [ -f "${FORKSERVER_ABSL_SRC}/absl/base/BUILD.bazel" ] && return 0
    echo "setup: FORKSERVER_ABSL_SRC=${FORKSERVER_ABSL_SRC} has no Abseil" >&2
    return 1
  fi
  [ -f "${cache}/current/absl/base/BUILD.bazel" ] && return 0
  if ! apt-cache showsrc abseil 2>/dev/null | grep -q '^Package: abseil'; then
    local list=/etc/apt/sources.list.d/forkserver-debian-src.sources
    if [ ! -f "$list" ]; then
      echo "setup: adding Debian's source archive (deb-src) to apt: $list" >&2
      $sudo tee "$list" >/dev/null <<'SOURCES'
# Added by forkserver's scripts/setup.sh --tsan: Abseil's source package
# for the ThreadSanitizer build (apt-get source abseil).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    fi
    $sudo apt-get update -q >/dev/null
  fi
  echo "setup: fetching Abseil's Debian source into ${cache}" >&2
  mkdir -p "$cache"
  local work
  work="$(mktemp -d "${cache}/fetch.XXXXXX")"
  # Unpacks as abseil-<upstream version>/ with Debian's patches applied.
  (cd "$work" && apt-get source -q abseil >/dev/null)
  local tree
  tree="$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'abseil-*' | head -n 1)"
  if [ -z "$tree" ] || [ ! -f "$tree/absl/base/BUILD.bazel" ]; then
    echo "setup: apt-get source abseil gave no Abseil tree in $work" >&2
    return 1
  fi
  local name
  name="$(basename "$tree")"
  rm -rf "${cache:?}/${name}"
  mv "$tree" "${cache}/${name}"
  rm -rf "$work"
  ln -sfn "$name" "${cache}/current"
  echo "setup: Abseil source at ${cache}/${name}" >&2
}

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
      grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ "${#missing[@]}" -ne 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}" >/dev/null
fi
if [ "$tsan" -eq 1 ]; then
  # Abseil's BUILD files load @bazel_skylib; apt-get source unpacks with
  # dpkg-source.
  for package in bazel-skylib dpkg-dev; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null |
        grep -q "install ok installed"; then
      echo "setup: installing $package (for --tsan)" >&2
      $sudo apt-get update -q >/dev/null
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$package" >/dev/null
    fi
  done
  abseil_source
fi
