// Runs in a freshly forked child whose parent may have been multi-threaded.
//
// DANGER: async-signal-safe code only, from the first line to the last: no
// malloc (not even through std::), no locks, no stdio, no errno-to-string,
// no exceptions. Index loops over the plan's fixed arrays; raw syscalls.
// Reviewers: anything added here must be on signal-safety(7)'s list or a
// raw syscall.

#include "forkserver/child/child_setup.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

namespace forkserver {
namespace {

// The report descriptor can move (install_fds may need its number), so the
// steps share this instead of reading plan.report_fd.
struct ChildState {
  int report_fd;
};

[[noreturn]] void Fail(const ChildState& state, ChildStep step, int error) {
  const ChildSetupFailure failure{static_cast<int32_t>(step), error};
  while (::write(state.report_fd, &failure, sizeof(failure)) < 0 &&
         errno == EINTR) {
  }
  ::_exit(kChildSetupFailedExitCode);
}

bool ResetSignals() {
  struct sigaction action = {};
  action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    // glibc refuses its two internal real-time signals with EINVAL; they
    // are not ours to reset.
    if (::sigaction(sig, &action, nullptr) != 0 && errno != EINVAL) {
      return false;
    }
  }
  sigset_t empty;
  sigemptyset(&empty);
  return ::sigprocmask(SIG_SETMASK, &empty, nullptr) == 0;
}

bool IsTarget(const ChildSetupPlan& plan, int fd) {
  for (int i = 0; i < plan.fd_count; ++i) {
    if (plan.target_fds[i] == fd) return true;
  }
  return false;
}

// Installs source_fds[i] at target_fds[i]. Every source is first copied
// above all targets, so no dup3() can overwrite a source that a later one
// still needs, whatever the overlap between sources and targets (a source
// equal to its own target included: dup3 onto itself would fail, and
// dup2 would leave O_CLOEXEC set).
void InstallFds(const ChildSetupPlan& plan, ChildState& state) {
  int floor = 3;
  for (int i = 0; i < plan.fd_count; ++i) {
    if (plan.target_fds[i] >= floor) floor = plan.target_fds[i] + 1;
    if (plan.source_fds[i] >= floor) floor = plan.source_fds[i] + 1;
  }
  if (state.report_fd >= floor) floor = state.report_fd + 1;

  if (IsTarget(plan, state.report_fd)) {
    int moved = ::fcntl(state.report_fd, F_DUPFD_CLOEXEC, floor);
    if (moved < 0) Fail(state, ChildStep::kInstallFds, errno);
    state.report_fd = moved;
    floor = moved + 1;
  }
  int copies[kMaxChildFds];
  for (int i = 0; i < plan.fd_count; ++i) {
    copies[i] = ::fcntl(plan.source_fds[i], F_DUPFD_CLOEXEC, floor);
    if (copies[i] < 0) Fail(state, ChildStep::kInstallFds, errno);
  }
  // The copies stay behind with O_CLOEXEC; close_fds closes them.
  for (int i = 0; i < plan.fd_count; ++i) {
    if (::dup3(copies[i], plan.target_fds[i], 0) < 0) {
      Fail(state, ChildStep::kInstallFds, errno);
    }
  }
}

}  // namespace

// The fallback when close_range fails (kernels before 5.9, or a seccomp
// profile that refuses it): walk /proc/self/fd with raw getdents64 (no
// opendir: it allocates) and close what is in [first, last]. Closing while
// listing is fine; a closed number may just be listed again as gone.
int CloseFdRangeByListingAsyncSafe(unsigned int first, unsigned int last) {
  const int dir = static_cast<int>(
      ::syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return -1;
  alignas(8) char buffer[4096];
  while (true) {
    const long n = ::syscall(SYS_getdents64, dir, buffer, sizeof(buffer));
    if (n < 0) {
      ::close(dir);
      return -1;
    }
    if (n == 0) break;
    for (long offset = 0; offset < n;) {
      // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
      unsigned short reclen;
      __builtin_memcpy(&reclen, buffer + offset + 16, sizeof(reclen));
      const char* name = buffer + offset + 19;
      offset += reclen;
      if (name[0] < '0' || name[0] > '9') continue;
      unsigned int fd = 0;
      for (const char* c = name; *c >= '0' && *c <= '9'; ++c) {
        fd = fd * 10 + static_cast<unsigned int>(*c - '0');
      }
      if (fd >= first && fd <= last && fd != static_cast<unsigned int>(dir)) {
        ::close(static_cast<int>(fd));
      }
    }
  }
  ::close(dir);
  return 0;
}

namespace {

// Closes every descriptor except 0, 1, 2, the installed targets and the
// report descriptor. Gaps between kept descriptors are closed too (Boost
// 1.81's close_all skipped them).
void CloseOtherFds(const ChildSetupPlan& plan, const ChildState& state) {
  int keep[kMaxChildFds + 4];
  int count = 0;
  keep[count++] = 0;
  keep[count++] = 1;
  keep[count++] = 2;
  keep[count++] = state.report_fd;
  for (int i = 0; i < plan.fd_count; ++i) keep[count++] = plan.target_fds[i];
  // Insertion sort: no allocation, and count is small.
  for (int i = 1; i < count; ++i) {
    int value = keep[i];
    int j = i - 1;
    while (j >= 0 && keep[j] > value) {
      keep[j + 1] = keep[j];
      --j;
    }
    keep[j + 1] = value;
  }
  unsigned int next = 0;  // Lowest descriptor not yet accounted for.
  for (int i = 0; i < count; ++i) {
    if (keep[i] < 0) continue;
    unsigned int kept = static_cast<unsigned int>(keep[i]);
    if (kept > next && CloseFdRangeAsyncSafe(next, kept - 1) != 0) {
      Fail(state, ChildStep::kCloseFds, errno);
    }
    if (kept + 1 > next) next = kept + 1;
  }
  if (CloseFdRangeAsyncSafe(next, ~0u) != 0) Fail(state, ChildStep::kCloseFds, errno);
}

}  // namespace

int CloseFdRangeAsyncSafe(unsigned int first, unsigned int last) {
#ifdef SYS_close_range
  if (::syscall(SYS_close_range, first, last, 0) == 0) return 0;
#endif
  return CloseFdRangeByListingAsyncSafe(first, last);
}

const char* ChildStepName(ChildStep step) {
  switch (step) {
    case ChildStep::kNone:
      return "none";
    case ChildStep::kResetSignals:
      return "reset_signals";
    case ChildStep::kNewSession:
      return "new_session";
    case ChildStep::kParentDeath:
      return "parent_death";
    case ChildStep::kSetName:
      return "set_name";
    case ChildStep::kInstallFds:
      return "install_fds";
    case ChildStep::kCloseFds:
      return "close_fds";
    case ChildStep::kChdir:
      return "chdir";
    case ChildStep::kExecve:
      return "execve";
    case ChildStep::kAwaitRequest:
      return "await_request";
    case ChildStep::kRestoreFdLimit:
      return "restore_fd_limit";
  }
  return "unknown";
}

void RunChildSetupAsyncSafe(const ChildSetupPlan& plan) {
  ChildState state{plan.report_fd};

  if (plan.reset_signals && !ResetSignals()) {
    Fail(state, ChildStep::kResetSignals, errno);
  }

  if (plan.new_session && ::setsid() < 0) {
    Fail(state, ChildStep::kNewSession, errno);
  }

  if (plan.parent_death_signal != 0) {
    if (::prctl(PR_SET_PDEATHSIG, plan.parent_death_signal) != 0) {
      Fail(state, ChildStep::kParentDeath, errno);
    }
    // The parent may have died between fork() and prctl(); then no signal
    // will ever come.
    if (::getppid() != plan.expected_parent) {
      Fail(state, ChildStep::kParentDeath, ESRCH);
    }
  }

  // Best effort: a name is for humans reading ps(1).
  if (plan.name[0] != '\0') ::prctl(PR_SET_NAME, plan.name, 0, 0, 0);

  InstallFds(plan, state);
  CloseOtherFds(plan, state);

  if (plan.restore_nofile_soft >= 0) {
    // setrlimit is a plain syscall (prlimit64) here. The hard limit stays.
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
      Fail(state, ChildStep::kRestoreFdLimit, errno);
    }
    limit.rlim_cur = static_cast<rlim_t>(plan.restore_nofile_soft);
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      Fail(state, ChildStep::kRestoreFdLimit, errno);
    }
  }

  if (plan.exec_path == nullptr) {
    // Entry mode: setup is done; EOF on the report pipe tells the parent
    // (a warm child's first half keeps it: its request comes that way).
    if (!plan.keep_report_fd) ::close(state.report_fd);
    return;
  }
  if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) {
    Fail(state, ChildStep::kChdir, errno);
  }
  ::execve(plan.exec_path, plan.exec_argv, plan.exec_envp);
  Fail(state, ChildStep::kExecve, errno);
}

}  // namespace forkserver
