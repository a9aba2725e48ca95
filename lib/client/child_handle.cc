#include "lib/client/child_handle.h"

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/wait.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/client/fork_server_client.h"
#include "lib/ipc/seqpacket.h"
#include "lib/base/status_macros.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace {

// PIDFD_GET_INFO (Linux 6.15), spelled out: Debian 12's <linux/pidfd.h>
// predates it. The kernel records a process's wait status in its pidfd's
// inode when it exits, so the status can be read through the pidfd even
// after someone else reaped the process.
struct PidfdInfo {
  uint64_t mask;
  uint64_t cgroupid;
  uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  int32_t exit_code;
  uint32_t coredump_mask, coredump_signal;
  uint64_t supported_mask;
};
constexpr uint64_t kPidfdInfoExit = 1ull << 3;
constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);

// The wait status recorded for an ended process, or nullopt (a kernel
// before 6.15, or the process still runs).
std::optional<int> RecordedWaitStatus(int pidfd) {
  PidfdInfo info{};
  info.mask = kPidfdInfoExit;
  if (::ioctl(pidfd, kPidfdGetInfo, &info) != 0) return std::nullopt;
  if ((info.mask & kPidfdInfoExit) == 0) return std::nullopt;
  return info.exit_code;
}

class LocalChild : public ChildHandle {
 public:
  using ChildHandle::ChildHandle;

  absl::Status SignalGroup(int sig) override {
    kill_group_on_exit_ = true;
    if (reaped_) return absl::OkStatus();
    // Unreaped (running, or a zombie): its pid is still its own, so -pid
    // is its group. (A "spawn" child reaped behind our back by a
    // waitpid(-1) elsewhere is the one case this cannot see coming.)
    if (::kill(-pid(), sig) != 0 && errno != ESRCH) {
      return ErrnoError(absl::StrCat("kill(-", pid(), ", ", sig, ")"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<ExitInfo>> WaitForExit(
      absl::Time deadline) override {
    while (true) {
      if (!WaitReadable(pidfd(), deadline)) return std::nullopt;
      // Through the pidfd, with __WALL: our local children are clone
      // children (exit_signal 0, forkserver/child/spawner.h), which no
      // waitpid(-1) elsewhere in the application can reap.
      if (kill_group_on_exit_) KillGroupBeforeReaping();
      siginfo_t status{};
      rusage usage{};
      const long waited =
          ::syscall(SYS_waitid, P_PIDFD, pidfd(), &status,
                    WEXITED | WNOHANG | __WALL, &usage);
      if (waited == 0 && status.si_pid != 0) {
        ExitInfo info;
        info.exitcode = status.si_code == CLD_EXITED ? status.si_status
                                                     : -status.si_status;
        info.usage.user_cpu = absl::DurationFromTimeval(usage.ru_utime);
        info.usage.system_cpu = absl::DurationFromTimeval(usage.ru_stime);
        info.usage.max_rss_kib = usage.ru_maxrss;
        reaped_ = true;
        return info;
      }
      if (waited < 0 && errno == EINTR) continue;
      if (waited < 0) return StatusReapedElsewhere();
      // The pidfd became readable a moment before waitid could see the
      // zombie; only possible for a tiny window.
      if (absl::Now() >= deadline) return std::nullopt;
    }
  }

 private:
  // Someone else reaped it: a "spawn" child is an ordinary SIGCHLD child
  // again once it has exec'd (execve resets the exit signal, fs/exec.c
  // de_thread), so a waitpid(-1) or SIGCHLD set to SIG_IGN in the
  // application takes it. The kernel kept its status for the pidfd.
  // The child has ended but is not reaped yet (WNOWAIT): its group id
  // cannot belong to anyone else, so what it left in the group goes now.
  void KillGroupBeforeReaping() {
    siginfo_t peek{};
    if (::syscall(SYS_waitid, P_PIDFD, pidfd(), &peek,
                  WEXITED | WNOHANG | WNOWAIT | __WALL, nullptr) == 0 &&
        peek.si_pid != 0) {
      ::kill(-pid(), SIGKILL);
    }
  }

  absl::StatusOr<std::optional<ExitInfo>> StatusReapedElsewhere() {
    // The reaper's wait4 takes the child (EXIT_DEAD: our waitid sees
    // ECHILD) a moment before release_task records the status for the
    // pidfd: give that window a bounded moment (seen once in a full
    // suite run: foreign_reaper_test's spawn case lost its status).
    std::optional<int> status = RecordedWaitStatus(pidfd());
    for (int tries = 0; !status.has_value() && tries < 200; ++tries) {
      absl::SleepFor(absl::Microseconds(500));
      status = RecordedWaitStatus(pidfd());
    }
    if (!status.has_value()) {
      return absl::InternalError(absl::StrCat(
          "pid ", pid(), " was reaped by someone else (a waitpid(-1) or "
          "SIGCHLD ignored in this process) and this kernel (before 6.15, "
          "no PIDFD_INFO_EXIT) kept no copy: its exit status is lost. "
          "Do not reap children you did not start, or use the forkserver "
          "start method"));
    }
    ExitInfo info;  // Resource usage went to whoever reaped it.
    info.exitcode = WIFSIGNALED(*status) ? -WTERMSIG(*status)
                                         : WEXITSTATUS(*status);
    reaped_ = true;
    return info;
  }

  bool kill_group_on_exit_ = false;
  bool reaped_ = false;
};

class ServerChild : public ChildHandle {
 public:
  ServerChild(pid_t pid, UniqueFd pidfd, internal::ServerConnection connection)
      : ChildHandle(pid, std::move(pidfd)),
        connection_(std::move(connection)),
        server_pid_(connection_.server_pid()) {}

  absl::Status SignalGroup(int sig) override {
    if (!connection_.valid()) return absl::OkStatus();  // Its exit was reported.
    // The server reaps this child, so only the server knows the group id
    // is still the child's: it signals the group and SIGKILLs it when the
    // child ends, before reaping.
    wire::ClientMessage message;
    message.mutable_signal_group()->set_signal(sig);
    absl::Status sent = SendPacket(connection_.socket(), message.SerializeAsString());
    if (IsPeerClosed(sent)) return absl::OkStatus();  // Reported as lost.
    return sent;
  }

  absl::StatusOr<std::optional<ExitInfo>> WaitForExit(
      absl::Time deadline) override {
    if (!connection_.valid()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the exit of pid ", pid(), " was collected already"));
    }
    Packet packet;
    absl::Status received = ReceivePacket(connection_.socket(), deadline, &packet);
    if (absl::IsDeadlineExceeded(received)) return std::nullopt;
    if (IsPeerClosed(received)) {
      return absl::UnavailableError(absl::StrCat(
          internal::DescribeServerLoss(server_pid_),
          "; the exit status of pid ", pid(), " is unknown"));
    }
    RETURN_IF_ERROR(received);
    wire::ServerMessage message;
    if (message.ParseFromString(packet.bytes) && message.has_error()) {
      // E.g. UNAVAILABLE: the sandbox template running it died.
      return absl::Status(static_cast<absl::StatusCode>(message.error().code()),
                          absl::StrCat("fork server: ", message.error().message()));
    }
    if (!message.has_exited() ||
        message.exited().pid() != pid()) {
      return absl::InternalError(absl::StrCat(
          "unexpected message from the fork server while waiting for pid ",
          pid()));
    }
    const wire::ExitNotice& notice = message.exited();
    ExitInfo info;
    info.exitcode = notice.status_case() == wire::ExitNotice::kSignal
                        ? -notice.signal()
                        : notice.exit_code();
    info.usage.user_cpu = absl::Microseconds(notice.user_cpu_usec());
    info.usage.system_cpu = absl::Microseconds(notice.system_cpu_usec());
    info.usage.max_rss_kib = notice.max_rss_kib();
    if (notice.has_stats()) info.stats = notice.stats();
    // Done: the connection is between requests now, and goes back to the
    // idle set if the server keeps it alive (else both ends close).
    connection_.Release();
    return info;
  }

 private:
  internal::ServerConnection connection_;
  pid_t server_pid_;
};

}  // namespace

bool ChildHandle::Terminated() const {
  pollfd pfd{pidfd_.get(), POLLIN, 0};
  return ::poll(&pfd, 1, 0) > 0;
}

absl::Status ChildHandle::Signal(int sig) const {
  if (::syscall(SYS_pidfd_send_signal, pidfd_.get(), sig, nullptr, 0) == 0 ||
      errno == ESRCH) {
    return absl::OkStatus();
  }
  return ErrnoError(absl::StrCat("pidfd_send_signal(pid ", pid_, ", ", sig, ")"));
}

std::unique_ptr<ChildHandle> MakeLocalChild(pid_t pid, UniqueFd pidfd) {
  return std::make_unique<LocalChild>(pid, std::move(pidfd));
}

std::unique_ptr<ChildHandle> MakeServerChild(
    pid_t pid, UniqueFd pidfd, internal::ServerConnection connection) {
  return std::make_unique<ServerChild>(pid, std::move(pidfd),
                                       std::move(connection));
}


}  // namespace forkserver
