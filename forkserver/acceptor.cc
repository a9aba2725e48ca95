#include "forkserver/acceptor.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "forkserver/server_log.h"
#include "lib/base/monotonic_clock.h"
#include "lib/ipc/seqpacket.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace server_internal {

void Acceptor::OpenReserve() {
  reserve_fd_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
}

void Acceptor::Resume() {
  resume_at_ = absl::InfiniteFuture();
  if (!reserve_fd_) OpenReserve();
  if (listener_) events_.Watch(listener_.get(), EventSource::kListener);
}

void Acceptor::OnReadable() {
  while (true) {
    UniqueFd socket(::accept4(listener_.get(), nullptr, nullptr,
                              SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (socket) {
      connections_.Accept(std::move(socket));
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if ((errno == EMFILE || errno == ENFILE) && reserve_fd_) {
      // Free the reserve, take one connection, refuse it, take the reserve
      // back: a pending connection would otherwise keep the listener
      // readable for ever. Then back to epoll, not round this loop:
      // accept4 reports EMFILE even when nobody is waiting, and looping on
      // that would spin for ever.
      reserve_fd_.reset();
      UniqueFd refused(::accept4(listener_.get(), nullptr, nullptr,
                                 SOCK_CLOEXEC | SOCK_NONBLOCK));
      if (refused) {
        wire::ServerMessage message = ErrorMessage(absl::ResourceExhaustedError(
            "fork server is out of file descriptors"));
        (void)SendPacket(refused.get(), message.SerializeAsString());
        connections_.CountRefusal("out of file descriptors");
      }
      // Packets it queued before we took it are purged by its close.
      std::vector<UniqueFd> release;
      release.push_back(std::move(refused));
      connections_.ReleaseClientFds(release);
      OpenReserve();
      return;
    }
    if (errno == EMFILE || errno == ENFILE) {
      // No reserve: the listener would stay readable and epoll would wake
      // us at once, for ever. Stop watching it for a while.
      Log("out of file descriptors with no reserve; pausing accept");
      events_.Unwatch(listener_.get());
      resume_at_ = MonotonicNow() + kAcceptPause;
      return;
    }
    if (errno != EAGAIN) {
      Log(absl::StrCat("accept4: ", std::strerror(errno)));
    }
    return;
  }
}

}  // namespace server_internal
}  // namespace forkserver
