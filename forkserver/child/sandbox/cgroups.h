// File: forkserver/child/sandbox/cgroups.h
// async-signal-safe: runs after fork.
//
// The child's part of cgroup placement on cgroup v1 (this project's hybrid
// hosts): it writes "0" (itself) into each leaf's cgroup.procs through fds
// the parent opened, as its very first step, so none of its own code runs
// outside its limits. (On cgroup v2 nothing happens here: clone3 places
// the child with CLONE_INTO_CGROUP.)

#ifndef FORKSERVER_CHILD_SANDBOX_CGROUPS_H_
#define FORKSERVER_CHILD_SANDBOX_CGROUPS_H_

#include "forkserver/child/sandbox/sandbox_plan.h"

namespace forkserver {
namespace sandbox_child {

// 0 or an errno; *failed_index: the fd that failed.
int JoinCgroupsAsyncSafe(const SandboxPlan& plan, int* failed_index);

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_CGROUPS_H_
