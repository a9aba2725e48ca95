// The fork point of every child: the fork server's workers and programs,
// and the client library's "fork" and "spawn" start methods.
//
// Everything after fork() in the child branch is async-signal-safe: the
// branch is one call into child_setup.cc (the audited step list), then a
// return to the caller's entry point in entry mode. Review this file and
// child_setup.cc together; nothing else runs between fork() and exec/entry.

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/child/spawner.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace {

int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

// linux/sched.h's struct clone_args (CLONE_ARGS_SIZE_VER0), spelled out:
// that header clashes with <sched.h>.
struct CloneArgs {
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
};

// clone3(CLONE_PIDFD) as a plain fork: same stack (copied), the pidfd
// written to *pidfd by the kernel before either side runs on. -1 with
// errno on failure (ENOSYS: no clone3 here). Raw syscall: no atfork
// handlers, nothing of glibc's runs in the child.
pid_t Clone3WithPidfd(int exit_signal, int* pidfd) {
#ifdef SYS_clone3
  CloneArgs args{};
  args.flags = CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exit_signal = static_cast<uint64_t>(exit_signal);
  return static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof(args)));
#else
  errno = ENOSYS;
  return -1;
#endif
}

}  // namespace

// Longer than our 60-line rule on purpose: the fork point is reviewed as
// one piece (signals blocked, clone3 or fork, the one-call child branch,
// the parent's pidfd), and splitting it would spread the child's branch
// over several functions.
absl::StatusOr<ForkedChild> ForkChild(ChildSetupPlan plan,
                                      const ForkOptions& options) {
  int report[2];
  const bool made =
      options.report_socket
          ? ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, report) == 0
          : ::pipe2(report, O_CLOEXEC) == 0;
  if (!made) {
    const char* what = options.report_socket
                           ? "socketpair for the child's setup report"
                           : "pipe2 for the child's setup report";
    if (errno == EMFILE || errno == ENFILE) {
      return absl::ResourceExhaustedError(
          absl::StrCat(what, ": ", std::strerror(errno)));
    }
    return ErrnoError(what);
  }
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);
  plan.report_fd = report_write.get();

  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  int pidfd = -1;
  pid_t pid = -1;
  bool fell_back = options.libc_fork;
  if (!fell_back) {
    pid = Clone3WithPidfd(options.exit_signal, &pidfd);
    // Kernels before 5.3 (or a seccomp profile without clone3): fork, then
    // pidfd_open below. Only a SIGCHLD child can be made that way.
    fell_back = pid < 0 && (errno == ENOSYS || errno == EPERM) &&
                options.exit_signal == SIGCHLD;
  }
  // A fork() child has no pidfd until pidfd_open, and a reaper elsewhere
  // in the application (waitpid(-1) in another thread, SIGCHLD ignored)
  // could reap a child that ended first, leaving us a pid that is gone or,
  // worse, reused. So the child waits on this pipe until the parent holds
  // its pidfd: the parent writes one byte. (A byte, not only EOF: another
  // thread's fork child may hold a copy of the write end for a moment.)
  int hold[2] = {-1, -1};
  if (fell_back && ::pipe2(hold, O_CLOEXEC) != 0) {
    const int pipe_errno = errno;
    ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    if (pipe_errno == EMFILE || pipe_errno == ENFILE) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "pipe2 to hold the new child until its pidfd is open: ",
          std::strerror(pipe_errno)));
    }
    return ErrnoError("pipe2 to hold the new child", pipe_errno);
  }
  if (fell_back) pid = ::fork();
  if (pid == 0) {
    // ===== CHILD. Async-signal-safe only (child_setup.cc's rules) until
    // RunChildSetupAsyncSafe returns (entry mode) or execs (exec mode).
    if (fell_back) {
      // read, close: async-signal-safe. Signals are all blocked here, so
      // only the byte (or EOF: the parent died) ends the wait.
      ::close(hold[1]);
      char byte;
      while (::read(hold[0], &byte, 1) < 0 && errno == EINTR) {
      }
      ::close(hold[0]);
    }
    RunChildSetupAsyncSafe(plan);
    // Entry mode, setup done. The UniqueFds' numbers were closed by the
    // close_fds step; forget them without another close(). With
    // keep_report_fd the write end is still open: the caller's channel.
    report_read.release();
    ForkedChild in_child;
    if (plan.keep_report_fd) in_child.report.reset(report_write.release());
    report_write.release();
    return in_child;
  }
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  report_write.reset();
  // Closed on every return below; the child is released by a byte once
  // its pidfd is open, or by EOF if it was taken back.
  UniqueFd hold_read(hold[0]);
  UniqueFd hold_release(hold[1]);
  hold_read.reset();
  if (pid < 0) {
    if (fork_errno == EAGAIN || fork_errno == ENOMEM) {
      return absl::ResourceExhaustedError(
          absl::StrCat("fork: ", std::strerror(fork_errno)));
    }
    return ErrnoError("fork", fork_errno);
  }

  ForkedChild child;
  child.pid = pid;
  child.report = std::move(report_read);
  if (!fell_back) {
    child.pidfd.reset(pidfd);
    return child;
  }
  child.pidfd.reset(PidfdOpen(pid));
  if (!child.pidfd.valid()) {
    const int open_errno = errno;
    // Without a pidfd nobody can track the child safely: take it back now,
    // while it is certainly ours and unreaped: it is still blocked on the
    // hold pipe (we have not closed hold_release), so it cannot have ended
    // and been reaped elsewhere, and its pid cannot have been reused.
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (open_errno == EMFILE || open_errno == ENFILE) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "pidfd_open for the new child: ", std::strerror(open_errno)));
    }
    return ErrnoError("pidfd_open for the new child", open_errno);
  }
  const char go = 1;
  while (::write(hold_release.get(), &go, 1) < 0 && errno == EINTR) {
  }
  return child;
}

}  // namespace forkserver
