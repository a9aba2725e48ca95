#include "tests/bench/warm_server.h"

#include "lib/forkserver.h"

namespace forkserver::bench {

bool UseWarmWorkers(int warm) {
  ForkServerOptions options = GetForkServerOptions();
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  if (!info.ok()) return false;
  if (options.warm_workers != warm || info->warm_target != warm) {
    options.warm_workers = warm;
    SetForkServerOptions(options);
    if (!StopForkServer().ok()) return false;
  }
  return true;
}

}  // namespace forkserver::bench
