// File: forkserver/child/spawner.h
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

#ifndef FORKSERVER_FORKSERVER_CHILD_SPAWNER_H_
#define FORKSERVER_FORKSERVER_CHILD_SPAWNER_H_

#include <sys/types.h>

#include <csignal>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "forkserver/child/child_setup.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

struct ForkedChild {
  // In the parent: the child's pid (> 0). In the child (entry mode, after
  // a successful setup): 0, and the descriptors are invalid but for
  // `report` with plan.keep_report_fd (the child's end, still open).
  pid_t pid = 0;
  // From clone3(CLONE_PIDFD) (pidfd_open right after fork() only where
  // clone3 is missing): a race-free handle, readable when the child exits.
  UniqueFd pidfd;
  // Read end of the report pipe: EOF when setup succeeded (entry mode) or
  // execve succeeded (exec mode); a ChildSetupFailure otherwise.
  UniqueFd report;
  // VforkExecChild: true, and `report` is invalid. It returns only once
  // the child has exec'd or failed, so the report is complete here: empty
  // (exec'd) or a ChildSetupFailure (ChildSetupResult reads both).
  bool report_complete = false;
  std::string report_bytes;
};

struct ForkOptions {
  // The signal the parent gets when the child ends. SIGCHLD: an ordinary
  // child (the fork server reaps through SIGCHLD). 0: no signal at all,
  // and the child is then a "clone" child: waitpid(-1) without __WALL /
  // __WCLONE never reaps it, and SIGCHLD set to SIG_IGN does not auto-reap
  // it, so an application's own reaping cannot steal its status. Join it
  // with waitid(P_PIDFD, pidfd, ..., WEXITED | __WALL). Needs clone3.
  int exit_signal = SIGCHLD;
  // The report channel is an AF_UNIX SOCK_SEQPACKET socketpair (both ends
  // O_CLOEXEC) instead of a pipe: a warm child (warm_child.h) also gets
  // its request on it.
  bool report_socket = false;
  // glibc's fork() instead of clone3, for an entry-mode child of a
  // multi-threaded parent: glibc holds its malloc, stdio and loader locks
  // across its fork() and resets them in the child, which a raw clone3
  // cannot do, so the child's first allocation cannot wait for ever on a
  // lock another thread held. The child is then an ordinary SIGCHLD child
  // (exit_signal is ignored) and its pidfd comes from pidfd_open.
  bool libc_fork = false;
};

// Forks with clone3(CLONE_PIDFD): the pidfd exists before the child can
// end, so no reaper elsewhere can ever leave us with a pid and no process.
// plan.report_fd is filled in here. All signals are blocked across the
// fork so no handler of the parent's runs in the child before
// reset_signals. Raw clone3 runs no atfork handlers: in entry mode the
// child is as safe as its parent was single-threaded (the "fork" start
// method's documented rule). Without clone3 (ENOSYS) and with
// exit_signal SIGCHLD: fork() then pidfd_open; if that fails the child is
// killed and reaped and the error returned (RESOURCE_EXHAUSTED for
// EMFILE). EAGAIN/ENOMEM are RESOURCE_EXHAUSTED.
absl::StatusOr<ForkedChild> ForkChild(ChildSetupPlan plan,
                                      const ForkOptions& options = {});

// Exec mode (plan.exec_path set) without copying this process's page
// tables: clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD), as posix_spawn
// does, so the cost does not grow with the caller's memory. The caller is
// suspended until the child has exec'd or failed; the child runs only
// child_setup.cc's steps (vfork_exec.cc says why each is safe in shared
// memory). Returns with report_complete set: a failed step is in
// report_bytes as {step, errno}, exactly as ForkChild's pipe would carry
// it. The same errors as ForkChild; where clone refuses CLONE_PIDFD
// (EINVAL, kernels before 5.2) or is refused (EPERM, ENOSYS), and under
// ThreadSanitizer (VforkExecAvailable), it is ForkChild(plan), whose
// report arrives on its pipe as usual. INVALID_ARGUMENT in entry mode.
absl::StatusOr<ForkedChild> VforkExecChild(ChildSetupPlan plan);
// False where VforkExecChild falls back to ForkChild by design (TSan).
bool VforkExecAvailable();

// The clone of VforkExecChild, for another exec-mode child (a sandbox
// template's, forkserver/template_loop.cc): runs child(arg) in
// clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD | extra_flags) on a
// stack in this frame, every signal blocked across the clone, and returns
// once the child has exec'd or exited: its pid (its pidfd in *pidfd), or
// -1 with errno. `child` must end in execve or _exit and write nothing of
// the caller's memory but that stack (vfork_exec.cc lists why that holds
// for child_setup.cc's steps; the sandbox steps keep the same rules). Only
// where VforkExecAvailable().
pid_t CloneVforkAsyncSafe(int (*child)(void*), void* arg, int extra_flags, int* pidfd);

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

#endif  // FORKSERVER_FORKSERVER_CHILD_SPAWNER_H_
