// File: forkserver/event_set.h
// -----------------------------------------------------------------------------
// The fork server's one epoll set. Each watched descriptor is tagged with
// what it is (EventSource), packed with the fd into epoll_data.u64, so the
// loop can dispatch an event without a lookup. Level-triggered, EPOLLIN
// only. A failed registration is logged, not returned: the loop keeps
// serving what it can watch.
//
//   EventSet events;
//   RETURN_IF_ERROR(events.Open());
//   events.Watch(socket, EventSource::kConnection);
//   int ready = events.Wait(buffer.data(), buffer.size(), timeout_millis);
//   ... EventSet::SourceOf(buffer[i]), EventSet::FdOf(buffer[i]) ...
//
// Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_EVENT_SET_H_
#define FORKSERVER_FORKSERVER_EVENT_SET_H_

#include <sys/epoll.h>

#include <cstdint>

#include "absl/status/status.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace server_internal {

// What an epoll event is about.
enum class EventSource : uint32_t {
  kListener,    // the listening socket: connections to accept
  kAlive,       // the owner's alive pipe: EOF means shut down
  kSignals,     // the signalfd
  kConnection,  // a client connection
  kReport,      // a child's setup-report pipe
  kTemplate,    // a sandbox template's socket (forkserver/templates.h)
};

class EventSet {
 public:
  // Creates the epoll instance (O_CLOEXEC). The errno status of
  // epoll_create1 on failure.
  absl::Status Open();

  // Adds `fd` for EPOLLIN; logs a failure.
  void Watch(int fd, EventSource source);
  // Removes `fd`; quiet when it was not watched.
  void Unwatch(int fd);

  // epoll_wait into `events`: the number of ready events, or -1 with errno
  // set (EINTR included).
  int Wait(epoll_event* events, int max_events, int timeout_millis);

  static EventSource SourceOf(const epoll_event& event) {
    return static_cast<EventSource>(event.data.u64 >> 32);
  }
  static int FdOf(const epoll_event& event) {
    return static_cast<int>(event.data.u64 & 0xffffffffu);
  }

 private:
  UniqueFd epoll_;
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_EVENT_SET_H_
