// async-signal-safe: runs after fork. Raw syscalls only.

#include "forkserver/child/sandbox/template_child.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "forkserver/child/sandbox/report.h"

namespace forkserver {
namespace sandbox_child {
namespace {

// Sources may sit on another one's target: move every source above the
// targets first, then onto its target (dup2 clears O_CLOEXEC there).
void InstallFds(const SandboxPlan& plan, const TemplateChildFds& fds) {
  int moved[kMaxTemplateChildFds];
  for (int i = 0; i < fds.count; ++i) {
    // Above every target, so no move lands on a target still to be read.
    const int above = fds.max_target + 1 > 10 ? fds.max_target + 1 : 10;
    moved[i] = ::fcntl(fds.sources[i], F_DUPFD_CLOEXEC, above);
    if (moved[i] < 0) FailStep(plan.report_fd, SandboxStep::kInstallFds, errno, i);
  }
  for (int i = 0; i < fds.count; ++i) {
    if (fds.targets[i] < 0 || fds.targets[i] > fds.max_target) {
      FailStep(plan.report_fd, SandboxStep::kInstallFds, EBADF, i);
    }
    if (::dup2(moved[i], fds.targets[i]) < 0) {
      FailStep(plan.report_fd, SandboxStep::kInstallFds, errno, i);
    }
    ::close(moved[i]);
  }
}

void ResetSignals(const SandboxPlan& plan) {
  struct sigaction action = {};
  action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    (void)::sigaction(sig, &action, nullptr);  // EINVAL for the RT ones glibc keeps.
  }
  sigset_t empty;
  sigemptyset(&empty);
  if (::sigprocmask(SIG_SETMASK, &empty, nullptr) != 0) {
    FailStep(plan.report_fd, SandboxStep::kResetSignals, errno);
  }
}

}  // namespace

void PrepareTemplateChildAsyncSafe(const SandboxPlan& plan, const TemplateChildFds& fds) {
  InstallFds(plan, fds);
  ResetSignals(plan);
  if (::setsid() < 0) FailStep(plan.report_fd, SandboxStep::kNewSession, errno);
}

}  // namespace sandbox_child
}  // namespace forkserver
