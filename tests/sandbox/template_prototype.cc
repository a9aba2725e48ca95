#include "tests/sandbox/template_prototype.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/child/sandbox/namespaces.h"
#include "forkserver/child/sandbox/report.h"
#include "forkserver/child/sandbox/steps.h"
#include "forkserver/sandbox/launcher.h"

extern char** environ;

namespace forkserver {
namespace sandbox {
namespace testing {
namespace {

using sandbox_child::SandboxFailure;
using sandbox_child::SandboxPlan;

// Reply: {kind, value}: kind 0 = wait status, 1 = failure step (value
// errno in the second word).
struct Reply {
  int32_t kind;
  int32_t status;
  SandboxFailure failure;
};

int ReceiveRequest(int sock, int* fds, int max_fds) {
  char byte;
  iovec iov = {&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * sandbox_child::kMaxCgroupFds)];
  msghdr message = {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  if (recvmsg(sock, &message, MSG_CMSG_CLOEXEC) != 1) return -1;
  int count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const int n = static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < n && count < max_fds; ++i) {
      std::memcpy(&fds[count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  return count;
}

// The template's loop, in the cloned template process (single-threaded).
[[noreturn]] void Serve(int sock, SandboxPlan child_plan, uint64_t per_child_flags) {
  while (true) {
    int fds[sandbox_child::kMaxCgroupFds];
    const int count = ReceiveRequest(sock, fds, sandbox_child::kMaxCgroupFds);
    if (count < 0) _exit(0);
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) _exit(1);
    SandboxPlan plan = child_plan;
    plan.report_fd = report[1];
    plan.cgroup_fd_count = count;
    for (int i = 0; i < count; ++i) plan.cgroup_procs_fds[i] = fds[i];
    struct clone_args args = {};
    args.flags = per_child_flags;
    args.exit_signal = SIGCHLD;
    const long pid = syscall(SYS_clone3, &args, sizeof(args));
    if (pid == 0) {
      close(report[0]);
      close(sock);
      sandbox_child::RunSandboxStepsAsyncSafe(plan, sandbox_child::kPerChild);
      _exit(127);
    }
    close(report[1]);
    for (int i = 0; i < count; ++i) close(fds[i]);
    Reply reply = {};
    if (pid < 0) {
      reply.kind = 1;
      reply.failure = {static_cast<int32_t>(sandbox_child::SandboxStep::kNone), errno, -1};
    } else if (read(report[0], &reply.failure, sizeof(reply.failure)) == sizeof(reply.failure)) {
      reply.kind = 1;
    }
    close(report[0]);
    int status = 0;
    if (pid > 0) waitpid(static_cast<pid_t>(pid), &status, 0);
    reply.status = status;
    if (write(sock, &reply, sizeof(reply)) != sizeof(reply)) _exit(1);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<TemplatePrototype>> TemplatePrototype::Start(
    const CompiledSandbox& sandbox, const std::vector<std::string>& argv,
    const TemplateOptions& options) {
  std::unique_ptr<TemplatePrototype> t(new TemplatePrototype());
  int pair[2], report[2], release[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0 ||
      pipe2(report, O_CLOEXEC) != 0 || pipe2(release, O_CLOEXEC) != 0) {
    return absl::ErrnoToStatus(errno, "socketpair/pipe2");
  }
  // The template's own plan: everything long-lived (kEnter).
  SandboxPlan enter = sandbox.plan();
  enter.report_fd = report[1];
  enter.release_fd = release[0];
  // The children's plan: the per-child part, plus a fresh /proc for a
  // per-child pid namespace.
  t->argv_ = argv;  // The template's copy of memory holds them from clone3 on.
  for (const std::string& a : t->argv_) t->argv_c_.push_back(const_cast<char*>(a.c_str()));
  t->argv_c_.push_back(nullptr);
  t->envp_c_.push_back(nullptr);
  SandboxPlan child = sandbox.plan();
  child.fresh_proc = options.pid_namespace_per_child ? "/proc" : nullptr;
  child.fresh_tmpfs =
      options.pid_namespace_per_child && options.fresh_tmp_per_child ? "/tmp" : nullptr;
  child.pid1_init = options.reaping_init;
  child.exec_path = t->argv_c_[0];
  child.exec_argv = t->argv_c_.data();
  child.exec_envp = t->envp_c_.data();
  child.parent_death_signal = SIGKILL;
  const uint64_t per_child = options.pid_namespace_per_child ? (CLONE_NEWPID | CLONE_NEWNS) : 0;

  struct clone_args args = {};
  // The template is pid 1 of its own pid namespace so it may mount proc.
  args.flags = sandbox.clone_flags() | CLONE_NEWPID | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&t->pidfd_);
  args.exit_signal = SIGCHLD;
  const long pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) {
    close(pair[0]);
    close(report[0]);
    close(release[1]);
    sandbox_child::RunSandboxStepsAsyncSafe(enter, sandbox_child::kEnter);
    close(report[1]);  // Entered: the parent reads EOF.
    Serve(pair[1], child, per_child);
  }
  if (pid < 0) return absl::ErrnoToStatus(errno, "clone3 template");
  t->pid_ = static_cast<pid_t>(pid);
  t->socket_ = pair[0];
  close(pair[1]);
  close(report[1]);
  close(release[0]);
  if (int error = sandbox_child::WriteIdMapsAsyncSafe(t->pid_, sandbox.uid_map(), sandbox.gid_map(),
                                                       sandbox.deny_setgroups());
      error != 0) {
    return absl::ErrnoToStatus(error, "template id maps");
  }
  (void)!write(release[1], "x", 1);
  close(release[1]);
  SandboxFailure failure{};
  const ssize_t n = read(report[0], &failure, sizeof(failure));
  close(report[0]);
  if (n == sizeof(failure)) {
    return SandboxFailureToStatus(failure, sandbox.DescribeFailureItem(failure.step, failure.index));
  }
  return t;
}

absl::StatusOr<int> TemplatePrototype::Launch(const std::vector<int>& cgroup_procs_fds) {
  char byte = 'r';
  iovec iov = {&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * sandbox_child::kMaxCgroupFds)] = {};
  msghdr message = {};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (!cgroup_procs_fds.empty()) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * cgroup_procs_fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * cgroup_procs_fds.size());
    std::memcpy(CMSG_DATA(c), cgroup_procs_fds.data(), sizeof(int) * cgroup_procs_fds.size());
  }
  if (sendmsg(socket_, &message, MSG_NOSIGNAL) != 1) return absl::ErrnoToStatus(errno, "template request");
  Reply reply = {};
  if (read(socket_, &reply, sizeof(reply)) != sizeof(reply)) {
    return absl::UnavailableError("template died");
  }
  if (reply.kind == 1) return SandboxFailureToStatus(reply.failure, "");
  return reply.status;
}

TemplatePrototype::~TemplatePrototype() {
  if (socket_ >= 0) close(socket_);  // The template exits on EOF.
  if (pidfd_ >= 0) {
    siginfo_t info;
    waitid(P_PIDFD, static_cast<id_t>(pidfd_), &info, WEXITED);
    close(pidfd_);
  }
}

}  // namespace testing
}  // namespace sandbox
}  // namespace forkserver
