// Pool throughput and round trip, no-op tasks: the workloads of
// tests/bench/python_pool_benchmark.py, so scripts/bench.sh can put ours
// beside Python multiprocessing.Pool and billiard measured in the same run.
//
//   bazel run -c opt //tests/bench:pool_benchmark
//
//   BM_MapChunksize1    map(noop, range(N), chunksize=1): tasks/s
//   BM_MapDefaultChunks map(noop, range(N)): tasks/s
//   BM_ApplyRoundTrip   apply_async(noop, (i,)).get() one at a time:
//                       p50/p99 us

#include <memory>
#include <vector>

#include "absl/time/clock.h"
#include "benchmark/benchmark.h"
#include "lib/forkserver.h"
#include "tests/bench/bench_samples.h"
#include "tools/latency_stats.h"

namespace forkserver {
namespace {

constexpr int kProcesses = 2;
constexpr int kItems = 20000;

absl::StatusOr<int> Noop(const int& x, TaskContext&) { return x; }
FORKSERVER_REGISTER_TASK(Noop);

std::unique_ptr<Pool> MakePool(StartMethod method) {
  PoolOptions options;
  options.processes = kProcesses;
  options.start_method = method;
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  return pool.ok() ? *std::move(pool) : nullptr;
}

void Map(benchmark::State& state, std::optional<int> chunksize) {
  auto pool = MakePool(StartMethod::kForkServer);
  if (pool == nullptr) {
    state.SkipWithError("pool failed to start");
    return;
  }
  std::vector<int> items(kItems);
  for (int i = 0; i < kItems; ++i) items[i] = i;
  CallOptions options;
  options.chunksize = chunksize;
  int64_t done = 0;
  absl::Duration elapsed;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    absl::StatusOr<std::vector<int>> out = pool->Map<int>("Noop", items, options);
    elapsed += absl::Now() - start;
    if (!out.ok() || out->size() != items.size()) {
      state.SkipWithError("map failed");
      break;
    }
    done += kItems;
  }
  state.counters["tasks_per_s"] =
      static_cast<double>(done) / absl::ToDoubleSeconds(elapsed);
  pool->Close();
  (void)pool->Join();
}

void BM_MapChunksize1(benchmark::State& state) { Map(state, 1); }
BENCHMARK(BM_MapChunksize1)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3);

void BM_MapDefaultChunks(benchmark::State& state) { Map(state, std::nullopt); }
BENCHMARK(BM_MapDefaultChunks)->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(3);

void BM_ApplyRoundTrip(benchmark::State& state) {
  auto pool = MakePool(StartMethod::kForkServer);
  if (pool == nullptr) {
    state.SkipWithError("pool failed to start");
    return;
  }
  std::vector<absl::Duration> sample;
  int i = 0;
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    absl::StatusOr<int> out = pool->Apply<int>("Noop", ++i);
    sample.push_back(absl::Now() - start);
    if (!out.ok()) {
      state.SkipWithError("apply failed");
      break;
    }
  }
  bench::DumpSamples("BM_ApplyRoundTrip", sample);
  state.counters["p50_us"] = absl::ToDoubleMicroseconds(Quantile(sample, 0.5));
  state.counters["p99_us"] = absl::ToDoubleMicroseconds(Quantile(sample, 0.99));
  pool->Close();
  (void)pool->Join();
}
BENCHMARK(BM_ApplyRoundTrip)->UseRealTime()->MinTime(3);

}  // namespace
}  // namespace forkserver
