#!/usr/bin/env bash
# Runs the client library's tests under ThreadSanitizer (clang-14,
# --config=tsan in .bazelrc) with Abseil compiled from Debian's source, and
# with clang's -Wthread-safety as an error for our code. Uses its own output
# base, as scripts/fuzz.sh does, so the gcc build's cache is not evicted.
#
#   scripts/tsan.sh                     the client library's suites
#   scripts/tsan.sh //tests/ipc/...     just these targets
#   scripts/tsan.sh --runs_per_test=5   more Bazel flags (before targets)
#
# Bounded: the build and tests are interrupted after $FORKSERVER_TSAN_TIMEOUT
# seconds (default 900). A TSan report fails its test; the report is in
# the test's log (printed for failing tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tsan
output_base="${HOME}/.cache/forkserver-tsan-bazel"
limit="${FORKSERVER_TSAN_TIMEOUT:-900}"

flags=()
while [ "$#" -gt 0 ] && [ "${1#-}" != "$1" ]; do flags+=("$1"); shift; done
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  # The client library: the pool, processes, the registry, the client and
  # IPC (whichever of these suites exist).
  for suite in pool process registry client ipc; do
    if [ -f "tests/${suite}/BUILD" ]; then targets+=("//tests/${suite}/..."); fi
  done
fi

trap 'bazel --output_base="$output_base" shutdown' EXIT
# SIGINT, like Ctrl-C: Bazel cancels the build and the tests cleanly.
timeout --signal=INT --kill-after=60 "$limit" \
  bazel --output_base="$output_base" test --config=tsan --symlink_prefix=/ --keep_going \
  "${flags[@]}" "${targets[@]}"
