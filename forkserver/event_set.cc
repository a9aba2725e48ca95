#include "forkserver/event_set.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/server_log.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace server_internal {

absl::Status EventSet::Open() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) return ErrnoError("epoll_create1");
  return absl::OkStatus();
}

void EventSet::Watch(int fd, EventSource source) {
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = (static_cast<uint64_t>(source) << 32) |
                   static_cast<uint32_t>(fd);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    Log(absl::StrCat("epoll_ctl(ADD, ", fd, "): ", std::strerror(errno)));
  }
}

void EventSet::Unwatch(int fd) {
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

int EventSet::Wait(epoll_event* events, int max_events, int timeout_millis) {
  return ::epoll_wait(epoll_.get(), events, max_events, timeout_millis);
}

}  // namespace server_internal
}  // namespace forkserver
