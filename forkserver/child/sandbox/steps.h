// File: forkserver/child/sandbox/steps.h
// async-signal-safe: runs after fork.
//
// The ordered sandbox step list. Phases let a template (a long-lived
// process already in the namespaces and the view) do only the per-child
// steps for each launch:
//   kEnter     join_cgroup wait_release set_ids parent_death <view> hostname
//              loopback chdir
//   kPerChild  join_cgroup parent_death new_proc fresh_tmpfs rlimits
//              drop_capabilities no_new_privs [setup_init] close_fds
//              seccomp execve
//   entry mode (exec_path null): ... no_new_privs close_others
//              [setup_init] seccomp, then return to the caller, which
//              closes report_fd and runs the entry
// seccomp comes last so a default-deny profile need allow only execve;
// the reaping init (setup_init) forks before it and stays unfiltered, with
// no capabilities and no_new_privs, running only its wait loop; it
// forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to the
// payload (the kernel drops signals from outside the namespace to a pid
// 1 without a handler) and exits 128+N when the payload died of N.
// kAll is both in one child (setup per launch). Every failure is reported
// with {step, errno, index} on plan.report_fd and _exit(127)s.

#ifndef FORKSERVER_CHILD_SANDBOX_STEPS_H_
#define FORKSERVER_CHILD_SANDBOX_STEPS_H_

#include "forkserver/child/sandbox/sandbox_plan.h"

namespace forkserver {
namespace sandbox_child {

enum SandboxPhase : int {
  kEnter = 1,
  kPerChild = 2,
  kAll = kEnter | kPerChild,
};

// With kPerChild in phases and plan.exec_path set, it does not return
// (execve or _exit). Otherwise it returns once the steps succeeded (with
// kPerChild, in entry mode: the filter loaded, only plan.keep_fds and
// 0..2 open).
void RunSandboxStepsAsyncSafe(const SandboxPlan& plan, int phases);

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_STEPS_H_
