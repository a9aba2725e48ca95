// File: forkserver/child/child_setup.h
// -----------------------------------------------------------------------------
// Everything a new child does between fork() and exec / its entry point.
//
// This is the one place in the project where code runs in a freshly forked
// child before it is known to be safe to run ordinary C++: the parent may be
// a multi-threaded application (start method "fork"), so the child may only
// make async-signal-safe calls. The rules for child_setup.cc:
//   * DANGER: no malloc, no locks, no stdio, no C++ library calls, no
//     exceptions, no logging. Raw syscalls and async-signal-safe libc only.
//   * Every input comes in a ChildSetupPlan, a plain struct the parent fills
//     before fork() (static_asserts below keep it trivially copyable).
//   * Each step has a name; a failing step writes {step, errno} to
//     plan.report_fd and _exit(kChildSetupFailedExitCode)s. The parent turns
//     that into an absl::Status naming the step (ChildSetupFailureToStatus).
//
// The steps, in order (RunChildSetupAsyncSafe):
//   reset_signals   every handler to SIG_DFL, then an empty signal mask
//   new_session     setsid(): own session and process group, no tty
//   parent_death    PR_SET_PDEATHSIG, then check the parent is still alive
//   set_name        PR_SET_NAME (comm), best effort
//   install_fds     source_fds[i] -> target_fds[i], without O_CLOEXEC
//   close_fds       close everything but 0, 1, 2, the targets, report_fd
//   restore_fd_limit  RLIMIT_NOFILE's soft limit back to what the server
//                   was started with (after close_fds: lowering it first
//                   would make install_fds' F_DUPFD fail past it)
//   chdir           (exec mode, when cwd is set)
//   execve          (exec mode)
// A warm worker (warm_child.h) runs the first three when forked, waits
// for its request (await_request), then runs the rest.
// Sandbox steps (rlimits, namespaces, seccomp, cgroups) slot in before
// close_fds / execve as further named steps with their own plan fields.

#ifndef FORKSERVER_FORKSERVER_CHILD_CHILD_SETUP_H_
#define FORKSERVER_FORKSERVER_CHILD_CHILD_SETUP_H_

#include <sys/types.h>

#include <cstdint>
#include <type_traits>

#include "absl/status/status.h"

namespace forkserver {

// Most descriptors a child can be given (kMaxPacketFds + spare for the
// library's own, e.g. a spawned worker's bootstrap memfd).
inline constexpr int kMaxChildFds = 72;

// Exit code of a child whose setup failed (after reporting {step, errno}).
inline constexpr int kChildSetupFailedExitCode = 127;

enum class ChildStep : int32_t {
  kNone = 0,
  kResetSignals = 1,
  kNewSession = 2,
  kParentDeath = 3,
  kSetName = 4,
  kInstallFds = 5,
  kCloseFds = 6,
  kChdir = 7,
  kExecve = 8,
  // A warm child (warm_child.h) got no valid request on its channel.
  kAwaitRequest = 9,
  kRestoreFdLimit = 10,
};

// "reset_signals", "install_fds", ...; "unknown" for anything else.
const char* ChildStepName(ChildStep step);

struct ChildSetupPlan {
  // Write end of an O_CLOEXEC pipe (or socket) to the parent. Kept open
  // through setup; closed by execve (exec mode) or by
  // RunChildSetupAsyncSafe itself just before it returns (entry mode), so
  // the parent reads EOF on success and a ChildSetupFailure otherwise.
  int report_fd = -1;

  // Warm workers (forkserver/child/warm_child.h) run the steps in two
  // halves: reset_signals, new_session and parent_death once, when forked
  // ahead of any request; set_name, install_fds and close_fds when the
  // request comes (with reset_signals false: already done).
  bool reset_signals = true;
  bool new_session = true;

  // 0: none. Otherwise the signal the child gets when its parent dies, and
  // the pid the parent had, to catch a parent that died before prctl().
  int parent_death_signal = 0;
  pid_t expected_parent = 0;

  // NUL-terminated; empty: leave comm alone.
  char name[16] = {};

  int fd_count = 0;
  int source_fds[kMaxChildFds] = {};
  int target_fds[kMaxChildFds] = {};

  // Exec mode when exec_path is set: the argv/envp arrays (NULL-terminated)
  // and strings must stay valid in the parent until fork() returns; the
  // child's copy of memory holds them.
  const char* exec_path = nullptr;
  char* const* exec_argv = nullptr;
  char* const* exec_envp = nullptr;
  const char* cwd = nullptr;

  // >= 0: the child's soft RLIMIT_NOFILE (the server raised its own; see
  // forkserver/fd_budget.h). -1: leave it.
  int64_t restore_nofile_soft = -1;

  // Entry mode only: return with report_fd still open (a warm child waits
  // on it for its request). fd_count must then be 0, so that it is never
  // moved.
  bool keep_report_fd = false;
};
static_assert(std::is_trivially_copyable_v<ChildSetupPlan>);
static_assert(std::is_trivially_destructible_v<ChildSetupPlan>);

// What a failed child writes to report_fd: one record, 8 bytes, atomic on
// a pipe.
struct ChildSetupFailure {
  int32_t step;
  int32_t error;
};
static_assert(sizeof(ChildSetupFailure) == 8);

// Runs the steps in the child. In exec mode it does not return. In entry
// mode it returns once every step succeeded, report_fd closed. On failure
// it reports and _exit()s.
void RunChildSetupAsyncSafe(const ChildSetupPlan& plan);

// Closes every open descriptor in [first, last]: close_range(2), or, where
// that fails (old kernel, seccomp), a walk of /proc/self/fd. -1 with errno
// when neither works. Async-signal-safe.
int CloseFdRangeAsyncSafe(unsigned int first, unsigned int last);
// Just the /proc/self/fd walk (exposed for its test).
int CloseFdRangeByListingAsyncSafe(unsigned int first, unsigned int last);

// Parent side: the status for a failure record, e.g.
// INTERNAL "child setup step 'install_fds' failed: Bad file descriptor".
// ENOENT/EACCES from execve map to NOT_FOUND/PERMISSION_DENIED.
absl::Status ChildSetupFailureToStatus(const ChildSetupFailure& failure);

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_CHILD_CHILD_SETUP_H_
