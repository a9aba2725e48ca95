#include "lib/child_handle.h"

#include <poll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "lib/fork_server_client.h"
#include "lib/seqpacket.h"
#include "lib/status_macros.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace {

class LocalChild : public ChildHandle {
 public:
  using ChildHandle::ChildHandle;

  absl::StatusOr<std::optional<ExitInfo>> WaitForExit(
      absl::Time deadline) override {
    while (true) {
      if (!WaitReadable(pidfd(), deadline)) return std::nullopt;
      int status = 0;
      rusage usage{};
      const pid_t reaped = ::wait4(pid(), &status, WNOHANG, &usage);
      if (reaped == pid()) {
        ExitInfo info;
        info.exitcode =
            WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
        info.usage.user_cpu = absl::DurationFromTimeval(usage.ru_utime);
        info.usage.system_cpu = absl::DurationFromTimeval(usage.ru_stime);
        info.usage.max_rss_kib = usage.ru_maxrss;
        return info;
      }
      if (reaped < 0 && errno == EINTR) continue;
      if (reaped < 0) {
        return absl::InternalError(absl::StrCat(
            "pid ", pid(), " was reaped by someone else (SIGCHLD ignored, "
            "or a waitpid(-1) elsewhere in the process); its exit status "
            "is lost"));
      }
      // The pidfd became readable a moment before wait4 could see the
      // zombie; only possible for a tiny window.
      if (absl::Now() >= deadline) return std::nullopt;
    }
  }
};

class ServerChild : public ChildHandle {
 public:
  ServerChild(pid_t pid, UniqueFd pidfd, UniqueFd connection,
              pid_t server_pid)
      : ChildHandle(pid, std::move(pidfd)),
        connection_(std::move(connection)),
        server_pid_(server_pid) {}

  absl::StatusOr<std::optional<ExitInfo>> WaitForExit(
      absl::Time deadline) override {
    Packet packet;
    absl::Status received = ReceivePacket(connection_.get(), deadline, &packet);
    if (absl::IsDeadlineExceeded(received)) return std::nullopt;
    if (IsPeerClosed(received)) {
      return absl::UnavailableError(absl::StrCat(
          internal::DescribeServerLoss(server_pid_),
          "; the exit status of pid ", pid(), " is unknown"));
    }
    RETURN_IF_ERROR(received);
    wire::ServerMessage message;
    if (!message.ParseFromString(packet.bytes) || !message.has_exited() ||
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
    connection_.reset();  // Done: the server closes its end too.
    return info;
  }

 private:
  UniqueFd connection_;
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

std::unique_ptr<ChildHandle> MakeServerChild(pid_t pid, UniqueFd pidfd,
                                             UniqueFd connection,
                                             pid_t server_pid) {
  return std::make_unique<ServerChild>(pid, std::move(pidfd),
                                       std::move(connection), server_pid);
}


}  // namespace forkserver
