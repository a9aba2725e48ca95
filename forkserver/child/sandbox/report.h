// File: forkserver/child/sandbox/report.h
// async-signal-safe: runs after fork.
//
// How a sandbox step reports failure: one SandboxFailure on report_fd,
// then _exit(kSandboxFailedExitCode). Also the steps' names, for the
// parent's messages (plain string literals; safe anywhere).

#ifndef FORKSERVER_CHILD_SANDBOX_REPORT_H_
#define FORKSERVER_CHILD_SANDBOX_REPORT_H_

#include "forkserver/child/sandbox/sandbox_plan.h"

namespace forkserver {
namespace sandbox_child {

[[noreturn]] void FailStep(int report_fd, SandboxStep step, int error,
                           int index = -1);

// "join_cgroup", "bind", ...; "unknown" for anything else.
const char* SandboxStepName(int32_t step);

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_REPORT_H_
