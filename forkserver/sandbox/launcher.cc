#include "forkserver/sandbox/launcher.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/child/sandbox/namespaces.h"
#include "forkserver/child/sandbox/report.h"
#include "forkserver/child/sandbox/steps.h"
#include "forkserver/sandbox/seccomp_log.h"
#include "forkserver/sandbox/status_macros.h"

extern char** environ;

namespace forkserver {
namespace sandbox {
namespace {

using sandbox_child::SandboxFailure;
using sandbox_child::SandboxPlan;

struct Pipes {
  int report[2] = {-1, -1};
  int release[2] = {-1, -1};
  void CloseAll() {
    for (int fd : {report[0], report[1], release[0], release[1]}) {
      if (fd >= 0) close(fd);
    }
  }
};

// Runs in the clone3 child. async-signal-safe: close(2) and the child-side
// steps only.
[[noreturn]] void RunChild(SandboxPlan& plan, Pipes& pipes) {
  close(pipes.report[0]);
  if (pipes.release[1] >= 0) close(pipes.release[1]);
  sandbox_child::RunSandboxStepsAsyncSafe(plan, sandbox_child::kAll);
  _exit(sandbox_child::kSandboxFailedExitCode);  // Unreachable: exec_path is set.
}

void KillAndReap(pid_t pid, int pidfd) {
  syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  siginfo_t info;
  while (waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) < 0 && errno == EINTR) {
  }
  (void)pid;
}

// After the child started: maps, release, then its report.
absl::Status Handshake(const CompiledSandbox& sandbox, pid_t pid, Pipes& pipes) {
  if (pipes.release[1] >= 0) {
    if (int error = sandbox_child::WriteIdMapsAsyncSafe(pid, sandbox.uid_map(), sandbox.gid_map(),
                                                         sandbox.deny_setgroups());
        error != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sandbox step 'id_maps' failed: ", std::strerror(error), " (uid_map \"",
          sandbox.uid_map(), "\")"));
    }
    if (write(pipes.release[1], "x", 1) != 1) return absl::ErrnoToStatus(errno, "release");
    close(pipes.release[1]);
    pipes.release[1] = -1;
  }
  SandboxFailure failure{};
  ssize_t n;
  while ((n = read(pipes.report[0], &failure, sizeof(failure))) < 0 && errno == EINTR) {
  }
  if (n == 0) return absl::OkStatus();
  if (n != sizeof(failure)) return absl::InternalError("short sandbox report");
  return SandboxFailureToStatus(failure, sandbox.DescribeFailureItem(failure.step, failure.index));
}

// clone3 with the policy's namespaces, a pidfd, and on cgroup v2 straight
// into the leaf. In the child it does not return. -1 with errno.
long Clone(const CompiledSandbox& sandbox, SandboxPlan& plan, Pipes& pipes,
           const CgroupLeaf* leaf, int* pidfd) {
  struct clone_args args = {};
  args.flags = sandbox.clone_flags() | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  if (leaf != nullptr && leaf->is_v2()) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(leaf->v2_dir_fd());
  }
  const long pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) RunChild(plan, pipes);
  return pid;
}

}  // namespace

const char* KillReasonName(KillReason reason) {
  switch (reason) {
    case KillReason::kNone: return "none";
    case KillReason::kWallTime: return "wall-time limit";
    case KillReason::kCpuTime: return "CPU-time limit";
    case KillReason::kMemory: return "memory limit (OOM)";
    case KillReason::kPidsLimit: return "pids limit";
    case KillReason::kSeccomp: return "seccomp violation";
    case KillReason::kSignal: return "signal";
  }
  return "unknown";
}

absl::Status SandboxFailureToStatus(const SandboxFailure& failure, const std::string& item) {
  std::string message = absl::StrCat("sandbox step '", sandbox_child::SandboxStepName(failure.step), "'");
  if (!item.empty()) absl::StrAppend(&message, " (", item, ")");
  absl::StrAppend(&message, " failed: ", std::strerror(failure.error));
  if (failure.step == static_cast<int32_t>(sandbox_child::SandboxStep::kExecve)) {
    if (failure.error == ENOENT) return absl::NotFoundError(message);
    if (failure.error == EACCES) return absl::PermissionDeniedError(message);
    // The request's fault, as for a plain launch (child_setup_report.cc):
    // too much argv/env for the kernel, or a file that is no program.
    if (failure.error == E2BIG || failure.error == ENOEXEC) {
      return absl::InvalidArgumentError(message);
    }
  }
  return absl::InternalError(message);
}

absl::StatusOr<std::unique_ptr<SandboxedProcess>> LaunchSandboxed(
    const CompiledSandbox& sandbox, CgroupManager* cgroups, const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/') {
    return absl::InvalidArgumentError("argv[0] must be an absolute path inside the sandbox");
  }
  std::unique_ptr<SandboxedProcess> process(new SandboxedProcess());
  const Limits& limits = sandbox.policy().limits();
  process->wall_time_ms_ = limits.wall_time_ms();
  process->cpu_time_ms_ = limits.cpu_time_ms();
  if (CgroupManager::Needed(limits)) {
    if (cgroups == nullptr) return absl::FailedPreconditionError("sandbox step 'cgroup': no CgroupManager");
    SANDBOX_ASSIGN_OR_RETURN(process->leaf_, cgroups->CreateLeaf(limits));
  }
  // Everything the child reads, built before clone3.
  std::vector<std::string> env = sandbox.Environment(environ);
  std::vector<char*> argv_c, envp_c;
  for (const std::string& a : argv) argv_c.push_back(const_cast<char*>(a.c_str()));
  for (const std::string& e : env) envp_c.push_back(const_cast<char*>(e.c_str()));
  argv_c.push_back(nullptr);
  envp_c.push_back(nullptr);

  Pipes pipes;
  const bool user_ns = sandbox.uid_map() != nullptr;
  if (pipe2(pipes.report, O_CLOEXEC) != 0 || (user_ns && pipe2(pipes.release, O_CLOEXEC) != 0)) {
    pipes.CloseAll();
    return absl::ErrnoToStatus(errno, "pipe2");
  }
  SandboxPlan plan = sandbox.plan();
  plan.report_fd = pipes.report[1];
  plan.release_fd = pipes.release[0];
  if (process->leaf_ != nullptr && !process->leaf_->is_v2()) {
    for (int fd : process->leaf_->v1_procs_fds()) plan.cgroup_procs_fds[plan.cgroup_fd_count++] = fd;
  }
  plan.exec_path = argv_c[0];
  plan.exec_argv = argv_c.data();
  plan.exec_envp = envp_c.data();

  process->start_ = absl::Now();
  process->start_monotonic_us_ = MonotonicMicros();
  const long pid = Clone(sandbox, plan, pipes, process->leaf_.get(), &process->pidfd_);
  if (pid < 0) {
    const int error = errno;
    pipes.CloseAll();
    return absl::FailedPreconditionError(absl::StrCat("sandbox step 'clone3' failed: ", std::strerror(error)));
  }
  process->pid_ = static_cast<pid_t>(pid);
  close(pipes.report[1]);
  pipes.report[1] = -1;
  if (pipes.release[0] >= 0) close(pipes.release[0]);
  pipes.release[0] = -1;
  absl::Status handshake = Handshake(sandbox, process->pid_, pipes);
  pipes.CloseAll();
  if (!handshake.ok()) {
    KillAndReap(process->pid_, process->pidfd_);
    process->reaped_ = true;
    return handshake;
  }
  return process;
}

namespace {

KillReason Classify(const SandboxedProcess& process, const SandboxResult& result, bool timed_out,
                    const CgroupLeaf* leaf, uint64_t cpu_time_ms) {
  if (timed_out) return KillReason::kWallTime;
  const int sig = result.term_signal;
  const uint64_t cpu_ms = static_cast<uint64_t>(
      (result.usage.ru_utime.tv_sec + result.usage.ru_stime.tv_sec) * 1000 +
      (result.usage.ru_utime.tv_usec + result.usage.ru_stime.tv_usec) / 1000);
  if (sig == SIGXCPU || (sig == SIGKILL && cpu_time_ms > 0 && cpu_ms + 50 >= cpu_time_ms)) {
    return KillReason::kCpuTime;
  }
  if (sig == SIGKILL && leaf != nullptr && leaf->OomKilled()) return KillReason::kMemory;
  if (sig == SIGSYS) return KillReason::kSeccomp;
  if (sig != 0) return KillReason::kSignal;
  if (result.exit_code != 0 && result.pids_limit_hit) return KillReason::kPidsLimit;
  return KillReason::kNone;
}

}  // namespace

absl::StatusOr<SandboxResult> WaitSandboxed(SandboxedProcess& process) {
  if (process.reaped_) return absl::FailedPreconditionError("already waited for");
  bool timed_out = false;
  if (process.wall_time_ms_ > 0) {
    const absl::Time deadline = process.start_ + absl::Milliseconds(process.wall_time_ms_);
    while (true) {
      const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
      struct pollfd pfd = {process.pidfd_, POLLIN, 0};
      const int ready = poll(&pfd, 1, left > 0 ? static_cast<int>(left) : 0);
      if (ready > 0) break;
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return absl::ErrnoToStatus(errno, "poll on pidfd");
      syscall(SYS_pidfd_send_signal, process.pidfd_, SIGKILL, nullptr, 0);
      timed_out = true;
      break;
    }
  }
  SandboxResult result;
  siginfo_t info = {};
  // The raw syscall: glibc's waitid has no rusage argument.
  while (syscall(SYS_waitid, P_PIDFD, process.pidfd_, &info, WEXITED, &result.usage) < 0) {
    if (errno != EINTR) return absl::ErrnoToStatus(errno, "waitid");
  }
  process.reaped_ = true;
  result.wall_time = absl::Now() - process.start_;
  if (info.si_code == CLD_EXITED) {
    result.exit_code = info.si_status;
  } else {
    result.term_signal = info.si_status;
  }
  const CgroupLeaf* leaf = process.leaf_.get();
  if (leaf != nullptr) {
    result.memory_peak = leaf->MemoryPeak();
    result.pids_limit_hit = leaf->PidsLimitHit();
  }
  result.kill_reason = Classify(process, result, timed_out, leaf, process.cpu_time_ms_);
  if (result.kill_reason == KillReason::kSeccomp) {
    absl::StatusOr<std::string> name = FindSeccompKill(process.pid_, process.start_monotonic_us_);
    result.seccomp_syscall = name.ok() ? *name : absl::StrCat("unknown: ", name.status().message());
  }
  if (process.leaf_ != nullptr) SANDBOX_RETURN_IF_ERROR(process.leaf_->Remove());
  return result;
}

SandboxedProcess::~SandboxedProcess() {
  if (!reaped_ && pidfd_ >= 0) KillAndReap(pid_, pidfd_);
  if (pidfd_ >= 0) close(pidfd_);
}

}  // namespace sandbox
}  // namespace forkserver
