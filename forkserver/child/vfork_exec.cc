// Exec mode without copying the parent's page tables: the child is made
// with clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD), as glibc's posix_spawn
// makes its children, so launching a program costs the same whatever the
// parent holds.
//
// DANGER: the child runs in the parent's memory until it execs or exits.
// Everything it runs is child_setup.cc's step list (async-signal-safe, no
// allocation, no locks), which in exec mode never returns: it ends in
// execve or in _exit after writing {step, errno} to the report pipe. What
// it writes of the parent's memory, and why each is harmless:
//   * its stack: a buffer in the parent's frame below, unused by the
//     parent, which is suspended (CLONE_VFORK) until the child has exec'd
//     or exited;
//   * errno: the parent's thread's (the TLS is shared); the parent reads
//     errno only for a failed clone, when there was no child;
//   * nothing else: its descriptor table, working directory, signal
//     handlers and mask are its own copies (no CLONE_FILES, CLONE_FS,
//     CLONE_SIGHAND), so install_fds, close_fds, chdir and reset_signals
//     change only the child. All signals are blocked across the clone, so
//     no handler of the parent's can run in the child (on shared memory)
//     before reset_signals has put every handler back to SIG_DFL.
// Review with fork.cc and child_setup.cc.

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/child/spawner.h"
#include "lib/base/status_macros.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define FORKSERVER_VFORK_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define FORKSERVER_VFORK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FORKSERVER_VFORK_TSAN 1
#endif
#if __has_feature(address_sanitizer) && !defined(FORKSERVER_VFORK_ASAN)
#include <sanitizer/asan_interface.h>
#define FORKSERVER_VFORK_ASAN 1
#endif
#endif

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

namespace forkserver {
namespace {

// The child's stack. child_setup.cc's deepest frame holds a 4 KiB
// getdents buffer and a few hundred bytes of descriptor arrays; libc's
// execve and prctl need little. 64 KiB leaves room for sanitizer
// redzones.
constexpr size_t kChildStackBytes = 64 * 1024;

// ===== CHILD, in the parent's memory. One call: in exec mode the steps
// end in execve or _exit, never here.
int VforkChildMain(void* plan) {
  RunChildSetupAsyncSafe(*static_cast<const ChildSetupPlan*>(plan));
  ::_exit(kChildSetupFailedExitCode);  // Not reached: exec mode.
}

absl::Status CloneError(const char* what, int error) {
  if (error == EAGAIN || error == ENOMEM || error == EMFILE ||
      error == ENFILE) {
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": ", std::strerror(error)));
  }
  return ErrnoError(what, error);
}

}  // namespace

bool VforkExecAvailable() {
#if defined(FORKSERVER_VFORK_TSAN)
  // TSan keeps per-thread state (its shadow call stack) in the thread's
  // TLS, which the child would push onto and never pop: under TSan the
  // plain fork path is taken.
  return false;
#else
  return true;
#endif
}

pid_t CloneVforkAsyncSafe(int (*child)(void*), void* arg, int extra_flags, int* pidfd) {
  // On our own stack: we are suspended while the child uses it, and it is
  // warm (no mmap, no page faults after the first launch).
  alignas(64) char stack[kChildStackBytes];
  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = ::clone(child, stack + sizeof(stack),
                            CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD | extra_flags,
                            arg, pidfd);
  // The child has exec'd or exited by now (CLONE_VFORK).
  const int clone_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
#if defined(FORKSERVER_VFORK_ASAN)
  // The child's instrumented frames poisoned parts of `stack` in the
  // (shared) shadow and never returned to unpoison them.
  __asan_unpoison_memory_region(stack, sizeof(stack));
#endif
  errno = clone_errno;
  return pid;
}

absl::StatusOr<ForkedChild> VforkExecChild(ChildSetupPlan plan) {
  if (plan.exec_path == nullptr) {
    return absl::InvalidArgumentError(
        "VforkExecChild is for exec mode only (no exec_path)");
  }
  if (!VforkExecAvailable()) return ForkChild(plan);
  int report[2];
  // Non-blocking read end: the verdict is read once, right after the
  // child has left our memory, and must not wait for anything.
  if (::pipe2(report, O_CLOEXEC | O_NONBLOCK) != 0) {
    return CloneError("pipe2 for the child's setup report", errno);
  }
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);
  plan.report_fd = report_write.get();

  int pidfd = -1;
  const pid_t pid = CloneVforkAsyncSafe(VforkChildMain, &plan, 0, &pidfd);
  const int clone_errno = errno;
  report_write.reset();
  if (pid < 0) {
    // CLONE_PIDFD unknown (kernels before 5.2: EINVAL) or clone refused
    // (a seccomp profile): the plain fork path, which has its own
    // fallbacks. Never a child without a pidfd.
    if (clone_errno == EINVAL || clone_errno == ENOSYS || clone_errno == EPERM) {
      plan.report_fd = -1;
      return ForkChild(plan);
    }
    return CloneError("clone(CLONE_VM | CLONE_VFORK)", clone_errno);
  }
  ForkedChild child;
  child.pid = pid;
  child.pidfd.reset(pidfd);
  // A failing step wrote its record before _exit, so it is in the pipe
  // now; nothing there means the child passed execve's point of no return
  // (or was killed before it could report, which its exit notice tells).
  char bytes[sizeof(ChildSetupFailure)];
  ssize_t n;
  do {
    n = ::read(report_read.get(), bytes, sizeof(bytes));
  } while (n < 0 && errno == EINTR);
  child.report_complete = true;
  if (n > 0) child.report_bytes.assign(bytes, static_cast<size_t>(n));
  return child;
}

}  // namespace forkserver
