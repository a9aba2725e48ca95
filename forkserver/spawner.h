// File: forkserver/spawner.h
// -----------------------------------------------------------------------------
// fork() a child that runs the child-setup steps of a ChildSetupPlan, and
// the parent-side helpers around it. Used by the fork server for every
// worker and by the client library for the "fork" and "spawn" start methods,
// so all three go through the same audited child path.
//
//   ASSIGN_OR_RETURN(ForkedChild child, ForkChild(plan));
//   if (child.pid == 0) {          // entry mode only: in the child
//     RunEntry(...);               // setup succeeded
//   }
//   RETURN_IF_ERROR(AwaitChildSetup(child.report.get(), deadline));

#ifndef FORKSERVER_FORKSERVER_SPAWNER_H_
#define FORKSERVER_FORKSERVER_SPAWNER_H_

#include <sys/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "forkserver/child_setup.h"
#include "lib/unique_fd.h"

namespace forkserver {

struct ForkedChild {
  // In the parent: the child's pid (> 0). In the child (entry mode, after
  // a successful setup): 0, and the descriptors are invalid.
  pid_t pid = 0;
  // pidfd_open(pid): race-free handle; readable when the child exits.
  UniqueFd pidfd;
  // Read end of the report pipe: EOF when setup succeeded (entry mode) or
  // execve succeeded (exec mode); a ChildSetupFailure otherwise.
  UniqueFd report;
};

// Forks. plan.report_fd is filled in here. All signals are blocked across
// fork() so no handler of the parent's runs in the child before
// reset_signals. If the pidfd cannot be opened the child is killed and
// reaped and the error returned (RESOURCE_EXHAUSTED for EMFILE).
// EAGAIN/ENOMEM from fork() are RESOURCE_EXHAUSTED.
absl::StatusOr<ForkedChild> ForkChild(ChildSetupPlan plan);

// Reads the report pipe until EOF (success) or a failure record, waiting
// until `deadline`. On DEADLINE_EXCEEDED the child is still setting up.
absl::Status AwaitChildSetup(int report_fd, absl::Time deadline);

// Parses what a report pipe delivered: 0 bytes is success, a whole
// ChildSetupFailure is its status (and is copied to *failure when given),
// anything else INTERNAL.
absl::Status ChildSetupResult(const char* bytes, size_t size,
                              ChildSetupFailure* failure = nullptr);

// Number of threads of the calling process (from /proc/self/task). The
// fork server refuses to fork when it is not 1.
absl::StatusOr<int> CountThreads();

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_SPAWNER_H_
