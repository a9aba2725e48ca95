// File: forkserver/child/sandbox/privileges.h
// async-signal-safe: runs after fork.
//
// rlimits, capabilities and no_new_privs. Each returns 0 or an errno.

#ifndef FORKSERVER_CHILD_SANDBOX_PRIVILEGES_H_
#define FORKSERVER_CHILD_SANDBOX_PRIVILEGES_H_

#include "forkserver/child/sandbox/sandbox_plan.h"

namespace forkserver {
namespace sandbox_child {

// prlimit64 on the calling process for each RlimitOp; *failed_index is set
// to the one that failed.
int ApplyRlimitsAsyncSafe(const SandboxPlan& plan, int* failed_index);

// Every capability not in keep_capabilities leaves the bounding set
// (PR_CAPBSET_DROP, while CAP_SETPCAP is still held), the ambient set is
// cleared, then capset sets effective = permitted = inheritable = keep and
// the kept ones are raised in the ambient set so they survive execve for a
// non-root uid. Without CAP_SETPCAP (an unprivileged caller outside a user
// namespace) the bounding set cannot shrink; that is accepted only when
// no_new_privs is on, which stops execve from gaining anything from it.
int DropCapabilitiesAsyncSafe(const SandboxPlan& plan);

int SetNoNewPrivsAsyncSafe();

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_PRIVILEGES_H_
