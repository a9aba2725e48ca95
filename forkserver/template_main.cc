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
#include "forkserver/child/sandbox/steps.h"
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

// Bounded wait for the template's kEnter verdict: EOF (entered) or a
// failure record.
absl::Status AwaitEntered(const sandbox::CompiledSandbox& sandbox, int report,
                          absl::Duration timeout) {
  const absl::Time deadline = MonotonicNow() + timeout;
  SandboxFailure failure{};
  while (true) {
    pollfd pfd{report, POLLIN, 0};
    const int64_t left = absl::ToInt64Milliseconds(deadline - MonotonicNow());
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(left, 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) return absl::DeadlineExceededError("sandbox template did not enter in time");
    const ssize_t n = ::read(report, &failure, sizeof(failure));
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) return absl::OkStatus();
    if (n != sizeof(failure)) return absl::InternalError("short sandbox template report");
    return sandbox::SandboxFailureToStatus(
        failure, sandbox.DescribeFailureItem(failure.step, failure.index));
  }
}

}  // namespace

absl::StatusOr<TemplateProcess> StartTemplate(const sandbox::CompiledSandbox& sandbox,
                                              absl::Duration timeout) {
  const absl::Time start = MonotonicNow();
  StartPipes pipes;
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pipes.pair) != 0 ||
      ::pipe2(pipes.report, O_CLOEXEC) != 0 || ::pipe2(pipes.release, O_CLOEXEC) != 0) {
    const int error = errno;
    pipes.CloseAll();
    return absl::ErrnoToStatus(error, "sandbox template: socketpair/pipe2");
  }
  TemplateProcess process;
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
    const int error = errno;
    pipes.CloseAll();
    return absl::FailedPreconditionError(
        absl::StrCat("sandbox step 'clone3' (template) failed: ", std::strerror(error)));
  }
  process.pid = static_cast<pid_t>(pid);
  process.pidfd.reset(pidfd);
  process.socket.reset(pipes.pair[0]);
  pipes.pair[0] = -1;
  for (int* fd : {&pipes.pair[1], &pipes.report[1], &pipes.release[0]}) {
    ::close(*fd);
    *fd = -1;
  }
  absl::Status entered = absl::OkStatus();
  if (int error = sandbox_child::WriteIdMapsAsyncSafe(process.pid, sandbox.uid_map(),
                                                       sandbox.gid_map(), sandbox.deny_setgroups());
      error != 0) {
    entered = absl::FailedPreconditionError(
        absl::StrCat("sandbox step 'id_maps' failed: ", std::strerror(error)));
  } else if (::write(pipes.release[1], "x", 1) != 1) {
    entered = absl::ErrnoToStatus(errno, "sandbox template release");
  } else {
    entered = AwaitEntered(sandbox, pipes.report[0], timeout);
  }
  pipes.CloseAll();
  if (!entered.ok()) {
    // It exits (failed step) or is killed; the server's reaper reaps it.
    ::syscall(SYS_pidfd_send_signal, process.pidfd.get(), SIGKILL, nullptr, 0);
    return entered;
  }
  ::fcntl(process.socket.get(), F_SETFL, O_NONBLOCK);
  process.setup_time = MonotonicNow() - start;
  return process;
}

}  // namespace server_internal
}  // namespace forkserver
