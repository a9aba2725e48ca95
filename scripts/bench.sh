#!/usr/bin/env bash
# Ours against Python's, in one run on one machine. Numbers only: nothing
# here asserts a speed.
#   1. start + join latency per start method, with ratios against raw
#      fork()+waitpid measured in the same run;
#   2. pool throughput (map with chunksize=1 and default chunks) and
#      apply_async round trip, against multiprocessing.Pool and billiard.
#
#   scripts/bench.sh [seconds per case, default 2]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-2}"
scripts/setup.sh
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
bazel build -c opt //tests/bench:start_latency_benchmark \
  //tests/bench:pool_benchmark >/dev/null 2>&1

echo "== start + join latency"
bazel-bin/tests/bench/start_latency_benchmark \
  --benchmark_min_time="$seconds" --benchmark_format=json \
  >"$out/ours.json"
/usr/bin/python3 tests/bench/python_start_latency.py "$seconds" \
  >"$out/python.jsonl"
/usr/bin/python3 scripts/bench_report.py "$out/ours.json" "$out/python.jsonl"

echo
echo "== pool: no-op tasks, 2 processes"
bazel-bin/tests/bench/pool_benchmark \
  --benchmark_min_time="$seconds" --benchmark_format=json \
  >"$out/pool.json"
/usr/bin/python3 tests/bench/python_pool_benchmark.py "$seconds" \
  >"$out/python_pool.jsonl"
/usr/bin/python3 scripts/bench_report.py --pool "$out/pool.json" \
  "$out/python_pool.jsonl"
