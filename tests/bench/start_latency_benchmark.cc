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

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "lib/forkserver.h"
#include "tests/bench/warm_server.h"
#include "tests/bench/bench_samples.h"
#include "tools/latency_stats.h"

namespace forkserver {
namespace {

FORKSERVER_ENTRY(BenchNoop, absl::string_view) { return 0; }

// `name` is the benchmark's as Google Benchmark prints it, minus the
// /min_time and /real_time suffixes, so the report can pair the samples
// with the row.
void ReportQuantiles(benchmark::State& state, const std::string& name,
                     const std::vector<absl::Duration>& sample) {
  bench::DumpSamples(name, sample);
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
  ReportQuantiles(state, "BM_RawForkWaitpid", sample);
}
BENCHMARK(BM_RawForkWaitpid)->UseRealTime()->MinTime(2.0);

// A server keeping `warm` warm workers (restarted when it keeps another
// number), its pool full. Launching it is a one-time cost, not a start's.
bool ServerWithWarmWorkers(int warm) {
  if (!bench::UseWarmWorkers(warm)) return false;
  absl::StatusOr<ForkServerInfo> info;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    info = GetForkServerInfo();
    if (!info.ok()) return false;
    if (info->warm_ready == info->warm_target) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return false;
}

int64_t WarmHits() {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  return info.ok() ? info->warm_hits : 0;
}

// `warm`: the server's warm workers (-1: not a fork-server case). The
// share of starts a warm worker served is reported as warm_share.
void BM_StartJoin(benchmark::State& state, StartMethod method,
                  const char* label, int warm = -1) {
  ProcessOptions options;
  options.start_method = method;
  if (method == StartMethod::kForkServer && !ServerWithWarmWorkers(warm)) {
    state.SkipWithError("no fork server");
  }
  const int64_t hits_before = warm >= 0 ? WarmHits() : 0;
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
  if (warm >= 0 && !sample.empty()) {
    state.counters["warm_share"] =
        static_cast<double>(WarmHits() - hits_before) / sample.size();
  }
  ReportQuantiles(state, std::string("BM_StartJoin/") + label, sample);
}
BENCHMARK_CAPTURE(BM_StartJoin, fork, StartMethod::kFork, "fork")
    ->UseRealTime()
    ->MinTime(2.0);
// Two warm workers (ForkServerOptions.warm_workers, the default).
BENCHMARK_CAPTURE(BM_StartJoin, forkserver, StartMethod::kForkServer,
                  "forkserver", 2)
    ->UseRealTime()
    ->MinTime(2.0);
// Every worker forked on request (warm_workers = 0).
BENCHMARK_CAPTURE(BM_StartJoin, forkserver_cold, StartMethod::kForkServer,
                  "forkserver_cold", 0)
    ->UseRealTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_StartJoin, spawn, StartMethod::kSpawn, "spawn")
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace
}  // namespace forkserver
