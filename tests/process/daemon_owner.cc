// A helper for daemon_test: an owner program that starts one daemon
// Process with the start method named in argv[1] ("fork" or "spawn"),
// writes the daemon's pid to stdout, and then waits to be killed.

#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "lib/forkserver.h"

FORKSERVER_ENTRY(SleepUntilKilled, absl::string_view) {
  while (true) ::pause();
  return 0;
}

int main(int argc, char** argv) {
  if (absl::Status init = forkserver::Init(argc, argv); !init.ok()) return 1;
  if (argc < 2) return 2;
  forkserver::ProcessOptions options;
  options.daemon = true;
  options.start_method = std::strcmp(argv[1], "spawn") == 0
                             ? forkserver::StartMethod::kSpawn
                             : forkserver::StartMethod::kFork;
  forkserver::Process daemon("SleepUntilKilled", "", options);
  if (absl::Status started = daemon.Start(); !started.ok()) {
    std::fprintf(stderr, "daemon_owner: %s\n", started.ToString().c_str());
    return 1;
  }
  std::printf("%d\n", daemon.pid());
  std::fflush(stdout);
  while (true) ::pause();
}
