#include "forkserver/template_main.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/child/sandbox/namespaces.h"
#include "forkserver/child/sandbox/report.h"
#include "forkserver/child/sandbox/steps.h"
#include "forkserver/sandbox/host_probe.h"
#include "forkserver/sandbox/launcher.h"
#include "forkserver/template_loop.h"
#include "lib/base/monotonic_clock.h"

namespace forkserver {
namespace server_internal {
namespace {

using sandbox_child::SandboxFailure;
using sandbox_child::SandboxPlan;

// async-signal-safe (clone3 child of the server): closes every fd but
// the three it keeps (the server's listener, connections, epoll and
// signalfd must not live on in a template).
void CloseAllBut(int a, int b, int c) {
  int keep[3] = {a, b, c};
  std::sort(keep, keep + 3);
  unsigned int from = 3;
  for (int fd : keep) {
    if (fd < 0) continue;
    if (static_cast<unsigned int>(fd) > from) ::syscall(SYS_close_range, from, fd - 1, 0u);
    from = static_cast<unsigned int>(fd) + 1;
  }
  ::syscall(SYS_close_range, from, ~0u, 0u);
}

struct StartPipes {
  int pair[2] = {-1, -1};
  int report[2] = {-1, -1};
  int release[2] = {-1, -1};
  void CloseAll() {
    for (int* p : {pair, report, release}) {
      for (int i = 0; i < 2; ++i) {
        if (p[i] >= 0) ::close(p[i]);
        p[i] = -1;
      }
    }
  }
};

[[noreturn]] void RunTemplate(const sandbox::CompiledSandbox& sandbox, StartPipes& pipes) {
  ::close(pipes.pair[0]);
  ::close(pipes.report[0]);
  ::close(pipes.release[1]);
  CloseAllBut(pipes.pair[1], pipes.report[1], pipes.release[0]);
  SandboxPlan enter = sandbox.plan();
  enter.report_fd = pipes.report[1];
  enter.release_fd = pipes.release[0];
  enter.parent_death_signal = SIGKILL;  // A template dies with its server.
  sandbox_child::RunSandboxStepsAsyncSafe(enter, sandbox_child::kEnter);
  ::close(pipes.report[1]);  // Entered: the server reads EOF.
  ::close(pipes.release[0]);
  // Single-threaded copy of the server from here on: ordinary code.
  ServeTemplate(pipes.pair[1], sandbox);
}

}  // namespace

absl::StatusOr<TemplateProcess> StartTemplate(const sandbox::CompiledSandbox& sandbox) {
  StartPipes pipes;
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pipes.pair) != 0 ||
      ::pipe2(pipes.report, O_CLOEXEC) != 0 || ::pipe2(pipes.release, O_CLOEXEC) != 0) {
    const int error = errno;
    pipes.CloseAll();
    return absl::ErrnoToStatus(error, "sandbox template: socketpair/pipe2");
  }
  TemplateProcess process;
  process.started = MonotonicNow();
  int pidfd = -1;
  struct clone_args args = {};
  // pid 1 of its own pid namespace when the policy has one, so it may
  // mount the view's /proc and reaps what ends up there.
  args.flags = sandbox.clone_flags() | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  const long pid = ::syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) RunTemplate(sandbox, pipes);
  if (pid < 0) {
    // The template's own clone is the host probe (TemplateCache compiles
    // without one): the same FAILED_PRECONDITION naming the namespaces.
    const int error = errno;
    pipes.CloseAll();
    return sandbox::NamespacesNotPossible(sandbox.clone_flags(), error);
  }
  process.pid = static_cast<pid_t>(pid);
  process.pidfd.reset(pidfd);
  process.socket.reset(pipes.pair[0]);
  process.entering.reset(pipes.report[0]);
  pipes.pair[0] = -1;
  pipes.report[0] = -1;
  for (int* fd : {&pipes.pair[1], &pipes.report[1], &pipes.release[0]}) {
    ::close(*fd);
    *fd = -1;
  }
  absl::Status released = absl::OkStatus();
  if (int error = sandbox_child::WriteIdMapsAsyncSafe(process.pid, sandbox.uid_map(),
                                                       sandbox.gid_map(), sandbox.deny_setgroups());
      error != 0) {
    released = absl::FailedPreconditionError(
        absl::StrCat("sandbox step 'id_maps' failed: ", std::strerror(error)));
  } else if (::write(pipes.release[1], "x", 1) != 1) {
    released = absl::ErrnoToStatus(errno, "sandbox template release");
  }
  pipes.CloseAll();
  if (!released.ok()) {
    // It exits (its release pipe is closed) or is killed; the server's
    // reaper reaps it.
    ::syscall(SYS_pidfd_send_signal, process.pidfd.get(), SIGKILL, nullptr, 0);
    return released;
  }
  // Our ends only (each end is its own open file description).
  ::fcntl(process.entering.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(process.socket.get(), F_SETFL, O_NONBLOCK);
  return process;
}

EnterVerdict ReadEnterVerdict(const sandbox::CompiledSandbox& sandbox, int entering) {
  EnterVerdict verdict;
  SandboxFailure failure{};
  ssize_t n;
  do {
    n = ::read(entering, &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return verdict;  // Still entering.
  verdict.known = true;
  if (n == 0) return verdict;  // EOF: entered.
  if (n != sizeof(failure)) {
    // The record is one write of 12 bytes to a pipe: atomic, so a short
    // read is a broken template.
    verdict.status = absl::InternalError(
        n < 0 ? absl::StrCat("sandbox template report: ", std::strerror(errno))
              : "short sandbox template report");
    return verdict;
  }
  verdict.status = sandbox::SandboxFailureToStatus(
      failure, sandbox.DescribeFailureItem(failure.step, failure.index));
  verdict.step = sandbox_child::SandboxStepName(failure.step);
  verdict.error = failure.error;
  return verdict;
}

}  // namespace server_internal
}  // namespace forkserver
