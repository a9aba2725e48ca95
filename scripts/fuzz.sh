#!/usr/bin/env bash
# Builds the request fuzzer with clang (libFuzzer + ASan + UBSan) and runs it
# for $1 seconds (default 60) on a copy of the seed corpus. A crash leaves
# its input in tests/fuzz/ and fails the script; add such inputs to
# tests/fuzz/request_corpus/ as regression seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
output_base="${HOME}/.cache/forkserver-fuzz-bazel"
bazel --output_base="$output_base" build --config=fuzz --symlink_prefix=/ \
  //tests/fuzz:request_fuzzer
bin="$(bazel --output_base="$output_base" info --config=fuzz bazel-bin)/tests/fuzz/request_fuzzer"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp tests/fuzz/request_corpus/* "$work/"
"$bin" -max_total_time="$seconds" -rss_limit_mb=512 -timeout=5 \
  -artifact_prefix=tests/fuzz/ -print_final_stats=1 "$work" 2>&1 | tail -n 15
bazel --output_base="$output_base" shutdown
