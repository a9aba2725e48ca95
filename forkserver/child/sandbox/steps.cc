// async-signal-safe: runs after fork. Calls only the step functions of
// this package and raw syscalls: no malloc, no stdio, no locks.

#include "forkserver/child/sandbox/steps.h"

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>

#include "forkserver/child/sandbox/cgroups.h"
#include "forkserver/child/sandbox/mounts.h"
#include "forkserver/child/sandbox/namespaces.h"
#include "forkserver/child/sandbox/privileges.h"
#include "forkserver/child/sandbox/report.h"
#include "forkserver/child/sandbox/seccomp.h"

namespace forkserver {
namespace sandbox_child {
namespace {

void JoinCgroups(const SandboxPlan& plan) {
  int index = -1;
  if (int error = JoinCgroupsAsyncSafe(plan, &index); error != 0) {
    FailStep(plan.report_fd, SandboxStep::kJoinCgroup, error, index);
  }
}

void ParentDeath(const SandboxPlan& plan) {
  if (plan.parent_death_signal == 0) return;
  const pid_t parent = ::getppid();
  if (::prctl(PR_SET_PDEATHSIG, plan.parent_death_signal, 0, 0, 0) != 0) {
    FailStep(plan.report_fd, SandboxStep::kParentDeath, errno);
  }
  // The parent may have died before prctl; then we were reparented. (In a
  // new pid namespace getppid() is 0 throughout, which is fine.)
  if (::getppid() != parent) FailStep(plan.report_fd, SandboxStep::kParentDeath, ESRCH);
}

// Raw syscalls: glibc's setresuid signals every thread (setxid), which a
// just-forked child need not and should not do.
void SetIds(const SandboxPlan& plan) {
  if (plan.clear_groups && ::syscall(SYS_setgroups, 0, nullptr) != 0) {
    FailStep(plan.report_fd, SandboxStep::kSetIds, errno);
  }
  if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0 ||
      ::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
    FailStep(plan.report_fd, SandboxStep::kSetIds, errno);
  }
}

void Enter(const SandboxPlan& plan) {
  const int fd = plan.report_fd;
  if (plan.release_fd >= 0) {
    if (int error = WaitForReleaseAsyncSafe(plan.release_fd); error != 0) {
      FailStep(fd, SandboxStep::kWaitRelease, error);
    }
  }
  if (plan.set_ids) SetIds(plan);
  ParentDeath(plan);
  if (plan.build_view) BuildFilesystemViewAsyncSafe(plan);
  if (plan.hostname != nullptr) {
    if (int error = SetHostnameAsyncSafe(plan.hostname, plan.hostname_length); error != 0) {
      FailStep(fd, SandboxStep::kHostname, error);
    }
  }
  if (plan.loopback_up) {
    if (int error = BringUpLoopbackAsyncSafe(); error != 0) {
      FailStep(fd, SandboxStep::kLoopback, error);
    }
  }
  if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0) FailStep(fd, SandboxStep::kChdir, errno);
}

void Restrict(const SandboxPlan& plan) {
  const int fd = plan.report_fd;
  if (plan.fresh_proc != nullptr) MountFreshProcAsyncSafe(plan, plan.fresh_proc);
  if (plan.fresh_tmpfs != nullptr) MountFreshTmpfsAsyncSafe(plan, plan.fresh_tmpfs);
  int index = -1;
  if (int error = ApplyRlimitsAsyncSafe(plan, &index); error != 0) {
    FailStep(fd, SandboxStep::kRlimits, error, index);
  }
  if (plan.drop_capabilities) {
    if (int error = DropCapabilitiesAsyncSafe(plan); error != 0) {
      FailStep(fd, SandboxStep::kDropCapabilities, error);
    }
  }
  if (plan.no_new_privs) {
    if (int error = SetNoNewPrivsAsyncSafe(); error != 0) {
      FailStep(fd, SandboxStep::kNoNewPrivs, error);
    }
  }
}

// Last before execve, after close_fds: with a default-deny profile
// nothing but execve itself need be allowed.
void LoadFilter(const SandboxPlan& plan) {
  if (plan.filter == nullptr) return;
  if (int error = LoadSeccompFilterAsyncSafe(plan); error != 0) {
    FailStep(plan.report_fd, SandboxStep::kSeccomp, error);
  }
}

// The payload the init forwards signals to; 0 until it is forked.
volatile sig_atomic_t g_payload = 0;
constexpr int kForwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// The kernel delivers a signal from outside the namespace to its pid 1
// only when pid 1 handles it, so the init passes these on: a queued one
// (si_code < 0, e.g. a Pool's soft-limit SIGUSR1 with its job id) with
// its value, any other as a plain kill.
void ForwardSignal(int sig, siginfo_t* info, void*) {
  const pid_t payload = g_payload;
  if (payload <= 0) return;
  if (info != nullptr && info->si_code < 0) {
    siginfo_t copy = *info;
    if (::syscall(SYS_rt_sigqueueinfo, payload, sig, &copy) == 0) return;
  }
  ::kill(payload, sig);
}

void SetForwarding(bool on) {
  struct sigaction action = {};
  if (on) {
    action.sa_sigaction = ForwardSignal;
    action.sa_flags = SA_SIGINFO | SA_RESTART;
  } else {
    action.sa_handler = SIG_DFL;
  }
  for (int sig : kForwarded) (void)::sigaction(sig, &action, nullptr);
}

// pid 1 of the child's pid namespace: reaps every process that ends up
// here, forwards the signals above to the payload and exits like it. It keeps no report fd, so the parent
// still reads EOF exactly when the payload execs.
[[noreturn]] void RunInit(pid_t payload) {
  int status = 0;
  while (true) {
    const pid_t pid = ::wait4(-1, &status, 0, nullptr);
    if (pid == payload) break;
    if (pid < 0 && errno != EINTR) ::_exit(kSandboxFailedExitCode);
  }
  // Exiting kills what is left in the namespace.
  if (WIFSIGNALED(status)) ::_exit(128 + WTERMSIG(status));
  ::_exit(WEXITSTATUS(status));
}

void StartInit(const SandboxPlan& plan) {
  // Before the fork, so no signal falls between it and the handlers
  // (one before g_payload is set is dropped, as it would be by the
  // kernel without a handler).
  SetForwarding(true);
  const long pid = ::syscall(SYS_clone, SIGCHLD, 0, nullptr, nullptr, 0);
  if (pid < 0) FailStep(plan.report_fd, SandboxStep::kSetupInit, errno);
  if (pid > 0) {
    g_payload = static_cast<sig_atomic_t>(pid);
    ::close(plan.report_fd);
    RunInit(static_cast<pid_t>(pid));
  }
  SetForwarding(false);
  // The payload: it dies with its init.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
    FailStep(plan.report_fd, SandboxStep::kSetupInit, errno);
  }
}

// Entry mode: close every descriptor above 2 but plan.keep_fds (there
// is no execve to drop the close-on-exec ones). keep_fds is small and
// unsorted: walk the gaps between kept numbers in increasing order.
void CloseOthers(const SandboxPlan& plan) {
  unsigned int from = 3;
  while (true) {
    unsigned int next = ~0u;  // The lowest kept fd >= from.
    for (int i = 0; i < plan.keep_fd_count; ++i) {
      const int fd = plan.keep_fds[i];
      if (fd >= 0 && static_cast<unsigned int>(fd) >= from &&
          static_cast<unsigned int>(fd) < next) {
        next = static_cast<unsigned int>(fd);
      }
    }
    if (next > from && ::syscall(SYS_close_range, from, next - 1, 0u) != 0) {
      FailStep(plan.report_fd, SandboxStep::kCloseOthers, errno);
    }
    if (next == ~0u) return;
    from = next + 1;
  }
}

[[noreturn]] void Exec(const SandboxPlan& plan) {
  // Everything above 2 becomes close-on-exec, the report fd included, so
  // no host descriptor (runc CVE-2024-21626) crosses into the payload.
  if (::syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */) != 0) {
    FailStep(plan.report_fd, SandboxStep::kCloseFds, errno);
  }
  LoadFilter(plan);
  ::execve(plan.exec_path, plan.exec_argv, plan.exec_envp);
  FailStep(plan.report_fd, SandboxStep::kExecve, errno);
}

}  // namespace

void RunSandboxStepsAsyncSafe(const SandboxPlan& plan, int phases) {
  JoinCgroups(plan);
  if (phases & kEnter) Enter(plan);
  if (!(phases & kPerChild)) return;
  if (!(phases & kEnter)) ParentDeath(plan);
  Restrict(plan);
  if (plan.exec_path == nullptr) CloseOthers(plan);
  // The init runs only its wait loop: no capabilities, no_new_privs, and
  // no filter (a default-deny profile need not allow wait4 for it).
  if (plan.pid1_init) StartInit(plan);
  if (plan.exec_path != nullptr) Exec(plan);
  LoadFilter(plan);  // Entry mode: the caller runs the entry point next.
}

}  // namespace sandbox_child
}  // namespace forkserver
