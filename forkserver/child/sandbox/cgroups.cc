// async-signal-safe: runs after fork. write(2) only.

#include "forkserver/child/sandbox/cgroups.h"

#include <unistd.h>

#include <cerrno>

namespace forkserver {
namespace sandbox_child {

int JoinCgroupsAsyncSafe(const SandboxPlan& plan, int* failed_index) {
  for (int i = 0; i < plan.cgroup_fd_count; ++i) {
    // "0" is the writing process itself, whatever pid namespace it is in.
    if (::write(plan.cgroup_procs_fds[i], "0", 1) != 1) {
      *failed_index = i;
      return errno;
    }
  }
  return 0;
}

}  // namespace sandbox_child
}  // namespace forkserver
