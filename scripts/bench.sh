#!/usr/bin/env bash
# Ours against Python's and against the machine's floors, in one run on one
# machine, written up as a report. Numbers only: nothing here asserts a
# speed.
#   - start + join latency per start method, ours and Python
#     multiprocessing's, against raw fork()+waitpid measured in the same run;
#   - pool throughput (map, chunksize=1 and default chunks) and apply round
#     trip, against multiprocessing.Pool and billiard, beside a C ping-pong
#     floor (socketpair, futex);
#   - fork cost against touched memory, plain and with huge pages (slope in
#     us per MiB);
#   - launching through forkserverd from a small and a 1 GiB client against
#     local posix_spawn;
#   - warm workers (tests/bench/extra_warm): request to running, start +
#     join against raw fork, fresh-worker throughput, an idle warm worker's
#     private memory, with 2 warm workers and with 0;
#   - sandboxed launch (tests/bench/extra_sandbox): /bin/true through
#     forkserverd in the build_action profile, against the same sandbox
#     built per launch, bubblewrap and firejail;
#   - sandboxed entry-mode workers (tests/bench/extra_sandbox_entry).
#
#   scripts/bench.sh [seconds per case, default 2]
#
# Writes bench-results/<timestamp>/ (results.json, report.md, *.png, the
# raw peer outputs and samples) and names it at the end. Every step runs
# under `timeout` (BENCH_STEP_TIMEOUT seconds, default 300 + 60 per second
# of the argument), so a stuck peer costs its step, never the run.
#
# Extra peers: every executable tests/bench/extra_* runs as
#   extra_NAME SECONDS OUTPUT.json
# and writes {"title": "...", "rows": [{"column": value, ...}], "note": "..."}
# to OUTPUT.json; the report shows it as a table.
#
# The report scripts' own tests (behaviour only):
#   /usr/bin/python3 tests/bench/bench_analysis_test.py
#   /usr/bin/python3 tests/bench/forkserverd_bench_test.py
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-2}"
step_timeout="${BENCH_STEP_TIMEOUT:-$((300 + 60 * ${seconds%.*}))}"
results="bench-results/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$results/raw" "$results/samples" "$results/sections"
export BENCH_SAMPLES_DIR="$PWD/$results/samples"
python=/usr/bin/python3
bin=bazel-bin/tests/bench

extras=()
for extra in tests/bench/extra_*; do
  [[ -x "$extra" ]] && extras+=("$extra")
done
total=$((10 + ${#extras[@]}))
step=0
run_started=$SECONDS
current=
trap 'if [[ -n "$current" ]]; then kill -TERM "$current" 2>/dev/null; fi
      echo; echo "interrupted; partial results in $results" >&2; exit 130' INT TERM

# run_step TITLE STDOUT_FILE COMMAND...: progress line, timeout (limit,
# default step_timeout), a record in raw/steps.jsonl. A failure or timeout
# is reported and the run goes on; what the peer printed before is kept.
run_step() {
  local title="$1" out="$2" limit="${limit:-$step_timeout}"
  shift 2
  step=$((step + 1))
  local name
  name="$(basename "$out")"
  name="${name%%.*}"
  printf '[%d/%d] %s ... ' "$step" "$total" "$title"
  local started=$SECONDS rc=0 status=ok
  # In the background and waited for: timeout puts the peer in its own
  # process group (so that it can kill the peer's children too), which
  # keeps Ctrl-C from reaching it; the INT trap below forwards it.
  timeout --kill-after=10 "$limit" "$@" >"$out" \
    2>"$results/raw/$name.stderr" &
  current=$!
  wait "$current" || rc=$?
  current=
  local took=$((SECONDS - started))
  if ((rc == 124 || rc == 137)); then
    status="timed out after ${limit}s"
  elif ((rc != 0)); then
    status="failed (exit $rc), see $results/raw/$name.stderr"
  fi
  if [[ "$status" == ok ]]; then echo "done (${took}s)"; else echo "$status (${took}s)"; fi
  printf '{"name": "%d %s", "title": "%s", "seconds": %d, "status": "%s"}\n' \
    "$step" "$name" "$title" "$took" "$status" >>"$results/raw/steps.jsonl"
}

printf '{"date": "%s", "host": "%s", "seconds": "%s", "load_before": "%s"}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -srm)" "$seconds" \
  "$(cut -d' ' -f1-3 /proc/loadavg)" >"$results/raw/meta.json"

# The build has its own, longer limit: other builds may share the machine.
limit="${BENCH_BUILD_TIMEOUT:-3600}" run_step "setup and build" \
  "$results/raw/build.log" bash -c "scripts/setup.sh && bazel build -c opt \
  //tests/bench:all //tools:forkserverd //tools:forkserverctl \
  //tools/celery:celery_worker"
if ! grep -q '"status": "ok"' "$results/raw/steps.jsonl"; then
  echo "build failed: see $results/raw/build.stderr" >&2
  exit 1
fi

run_step "ours: start + join latency (vs raw fork)" \
  "$results/raw/start_latency.json" \
  "$bin/start_latency_benchmark" --benchmark_min_time="$seconds" \
  --benchmark_format=json
run_step "python multiprocessing start + join latency" \
  "$results/raw/python_start_latency.jsonl" \
  "$python" tests/bench/python_start_latency.py "$seconds"
run_step "ours: pool map and round trip" "$results/raw/pool.json" \
  "$bin/pool_benchmark" --benchmark_min_time="$seconds" --benchmark_format=json
run_step "python multiprocessing pool" \
  "$results/raw/python_pool_multiprocessing.jsonl" \
  "$python" tests/bench/python_pool_benchmark.py "$seconds" multiprocessing
run_step "python billiard pool" "$results/raw/python_pool_billiard.jsonl" \
  "$python" tests/bench/python_pool_benchmark.py "$seconds" billiard
run_step "C ping-pong floor (socketpair, futex)" \
  "$results/raw/ping_pong_floor.jsonl" "$bin/ping_pong_floor" "$seconds"
run_step "fork cost vs touched memory (plain, THP, hugetlb)" \
  "$results/raw/fork_cost.jsonl" "$bin/fork_cost_benchmark" "$seconds"
run_step "forkserverd vs posix_spawn (small and 1 GiB client)" \
  "$results/raw/forkserverd.jsonl" \
  "$python" tests/bench/forkserverd_bench.py bazel-bin/tools 200
for extra in "${extras[@]}"; do
  section="$results/sections/$(basename "${extra%.*}").json"
  run_step "extra: $(basename "$extra")" "$results/raw/$(basename "${extra%.*}").log" \
    "$extra" "$seconds" "$PWD/$section"
done

run_step "results.json and plots" "$results/raw/report.log" bash -c \
  "$python scripts/bench_collect.py $results && $python scripts/bench_plots.py $results"
echo
"$python" scripts/bench_report.py "$results"
echo
echo "Whole run: $((SECONDS - run_started))s. Report: $results/report.md"
echo "($results: results.json, report.md, *.png, raw/ peer outputs, samples/)"
