// File: lib/pool/pool_event_tags.h
// -----------------------------------------------------------------------------
// How PoolCore's epoll registrations say what fired: epoll_event.data.u64
// holds what the descriptor is (top two bits) and, for a worker's
// descriptors, the worker's serial (never reused, unlike fds). Internal.

#ifndef FORKSERVER_LIB_POOL_POOL_EVENT_TAGS_H_
#define FORKSERVER_LIB_POOL_POOL_EVENT_TAGS_H_

#include <sys/epoll.h>

#include <cstdint>

namespace forkserver {
namespace internal {

enum PoolEventTag : uint64_t {
  kWake = 0,
  kTimer = 1,
  kChannel = 2,
  kSentinel = 3,
};
inline constexpr int kTagShift = 62;
inline constexpr uint64_t kSerialMask = (uint64_t{1} << kTagShift) - 1;

// Adds (EPOLL_CTL_ADD) or changes (EPOLL_CTL_MOD) `fd`'s registration.
inline void Watch(int epoll, int fd, uint64_t tag, int64_t serial,
                  uint32_t events = EPOLLIN, int op = EPOLL_CTL_ADD) {
  epoll_event event{};
  event.events = events;
  event.data.u64 =
      tag << kTagShift | (static_cast<uint64_t>(serial) & kSerialMask);
  ::epoll_ctl(epoll, op, fd, &event);
}

}  // namespace internal
}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_EVENT_TAGS_H_
