#include "forkserver/spawner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/seqpacket.h"
#include "lib/status_macros.h"

namespace forkserver {
namespace {

int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

}  // namespace

absl::StatusOr<ForkedChild> ForkChild(ChildSetupPlan plan) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    if (errno == EMFILE || errno == ENFILE) {
      return absl::ResourceExhaustedError(
          absl::StrCat("pipe2 for the child's setup report: ",
                       std::strerror(errno)));
    }
    return ErrnoError("pipe2 for the child's setup report");
  }
  UniqueFd report_read(report[0]);
  UniqueFd report_write(report[1]);
  plan.report_fd = report_write.get();

  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &previous);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // ---- child: async-signal-safe until RunChildSetupAsyncSafe returns.
    RunChildSetupAsyncSafe(plan);
    // Entry mode, setup done. The UniqueFds' numbers were closed by the
    // close_fds step; forget them without another close().
    report_read.release();
    report_write.release();
    return ForkedChild{};
  }
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  report_write.reset();
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
  child.pidfd.reset(PidfdOpen(pid));
  if (!child.pidfd.valid()) {
    const int open_errno = errno;
    // Without a pidfd nobody can track the child safely: take it back now,
    // while it is certainly ours and unreaped.
    ::kill(pid, SIGKILL);
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    if (open_errno == EMFILE || open_errno == ENFILE) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "pidfd_open for the new child: ", std::strerror(open_errno)));
    }
    return ErrnoError("pidfd_open for the new child", open_errno);
  }
  return child;
}

absl::Status ChildSetupResult(const char* bytes, size_t size,
                              ChildSetupFailure* failure_out) {
  if (size == 0) return absl::OkStatus();
  if (size != sizeof(ChildSetupFailure)) {
    return absl::InternalError(absl::StrCat(
        "child setup report of ", size, " bytes (expected 0 or ",
        sizeof(ChildSetupFailure), ")"));
  }
  ChildSetupFailure failure;
  std::memcpy(&failure, bytes, sizeof(failure));
  if (failure_out != nullptr) *failure_out = failure;
  return ChildSetupFailureToStatus(failure);
}

absl::Status AwaitChildSetup(int report_fd, absl::Time deadline) {
  // A whole failure record, or EOF with nothing (success).
  char buffer[sizeof(ChildSetupFailure)];
  size_t size = 0;
  while (size < sizeof(buffer)) {
    if (!WaitReadable(report_fd, deadline)) {
      return absl::DeadlineExceededError("child setup did not finish in time");
    }
    ssize_t n = ::read(report_fd, buffer + size, sizeof(buffer) - size);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoError("read of the child's setup report");
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  return ChildSetupResult(buffer, size);
}

absl::StatusOr<int> CountThreads() {
  // In procfs, a directory's link count is 2 + its subdirectories: one per
  // thread under /proc/self/task. One stat() instead of a directory scan.
  struct stat st;
  if (::stat("/proc/self/task", &st) != 0) {
    return ErrnoError("stat(/proc/self/task)");
  }
  return static_cast<int>(st.st_nlink) - 2;
}

}  // namespace forkserver
