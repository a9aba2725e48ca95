// Start + join latency of a no-op worker per start method, against raw
// fork() + _exit + waitpid measured in the same run.
//
//   bazel run -c opt //tests/bench:start_latency_benchmark
//
// Each benchmark times every iteration itself and reports p50/p99 (us) as
// counters next to Google Benchmark's mean. scripts/bench.sh runs this and
// the Python multiprocessing equivalent side by side.

#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "lib/forkserver.h"
#include "tools/latency_stats.h"

namespace forkserver {
namespace {

FORKSERVER_ENTRY(BenchNoop, absl::string_view) { return 0; }

void ReportQuantiles(benchmark::State& state,
                     const std::vector<absl::Duration>& sample) {
  state.counters["p50_us"] =
      absl::ToDoubleMicroseconds(Quantile(sample, 0.5));
  state.counters["p99_us"] =
      absl::ToDoubleMicroseconds(Quantile(sample, 0.99));
}

void BM_RawForkWaitpid(benchmark::State& state) {
  std::vector<absl::Duration> sample;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status;
    ::waitpid(pid, &status, 0);
    sample.push_back(absl::Now() - start);
  }
  ReportQuantiles(state, sample);
}
BENCHMARK(BM_RawForkWaitpid)->UseRealTime()->MinTime(2.0);

void BM_StartJoin(benchmark::State& state, StartMethod method) {
  ProcessOptions options;
  options.start_method = method;
  if (method == StartMethod::kForkServer) {
    // Launching the server is a one-time cost, not part of a start.
    if (!GetForkServerInfo().ok()) state.SkipWithError("no fork server");
  }
  std::vector<absl::Duration> sample;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    Process process("BenchNoop", "", options);
    if (!process.Start().ok() || !process.Join().ok() ||
        process.exitcode() != 0) {
      state.SkipWithError("worker failed");
      break;
    }
    sample.push_back(absl::Now() - start);
  }
  ReportQuantiles(state, sample);
}
BENCHMARK_CAPTURE(BM_StartJoin, fork, StartMethod::kFork)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_StartJoin, forkserver, StartMethod::kForkServer)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_StartJoin, spawn, StartMethod::kSpawn)
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace
}  // namespace forkserver
