// main() for the benchmarks: the binary is also its own fork server and
// spawned workers, so forkserver::Init() comes before Google Benchmark.

#include <cstdio>

#include "benchmark/benchmark.h"
#include "lib/forkserver.h"

int main(int argc, char** argv) {
  if (absl::Status init = forkserver::Init(argc, argv); !init.ok()) {
    std::fprintf(stderr, "%s\n", init.ToString().c_str());
    return 1;
  }
  // As a latency-minded deployment would run (fork_server_client.h).
  forkserver::ForkServerOptions options = forkserver::GetForkServerOptions();
  options.bind_symbols_at_launch = true;
  forkserver::SetForkServerOptions(options);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
