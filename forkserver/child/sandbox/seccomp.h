// File: forkserver/child/sandbox/seccomp.h
// async-signal-safe: runs after fork.
//
// Loads the BPF program the parent compiled once with libseccomp
// (forkserver/sandbox/seccomp_compiler.h); libseccomp itself never runs in
// the child. Call after no_new_privs (an unprivileged load needs it) and
// as the last step before execve: the program must allow what follows.

#ifndef FORKSERVER_CHILD_SANDBOX_SECCOMP_H_
#define FORKSERVER_CHILD_SANDBOX_SECCOMP_H_

#include "forkserver/child/sandbox/sandbox_plan.h"

namespace forkserver {
namespace sandbox_child {

// seccomp(SECCOMP_SET_MODE_FILTER) with plan.filter. 0 or an errno.
int LoadSeccompFilterAsyncSafe(const SandboxPlan& plan);

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_SECCOMP_H_
