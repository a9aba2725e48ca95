#!/usr/bin/env bash
# Start + join latency per start method, ours and Python's, in one run on
# one machine, with ratios against raw fork()+waitpid measured in the same
# run. Numbers only: nothing here asserts a speed.
#
#   scripts/bench.sh [seconds per case, default 2]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-2}"
scripts/setup.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
bazel build -c opt //tests/bench:start_latency_benchmark >/dev/null 2>&1
bazel-bin/tests/bench/start_latency_benchmark \
  --benchmark_min_time="$seconds" --benchmark_format=json \
  >"$out/ours.json"
/usr/bin/python3 tests/bench/python_start_latency.py "$seconds" \
  >"$out/python.jsonl"
/usr/bin/python3 scripts/bench_report.py "$out/ours.json" "$out/python.jsonl"
