// File: forkserver/acceptor.h
// -----------------------------------------------------------------------------
// Accepting connections on the fork server's listening socket.
//
// OnReadable() accepts every pending connection (O_CLOEXEC, O_NONBLOCK)
// and hands each to the ConnectionTable. When the descriptor table is full
// (EMFILE/ENFILE) it frees a reserve descriptor held for the purpose,
// accepts one connection, answers it RESOURCE_EXHAUSTED, closes it, counts
// it, and takes the reserve back, so a full table costs one refused client
// per wake-up instead of a loop spinning on a listener that stays readable.
// Without a reserve (/dev/null could not be opened) it stops watching the
// listener for kAcceptPause instead: the loop calls Resume() once
// resume_at() has passed (pending clients wait, nothing spins).
// Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_ACCEPTOR_H_
#define FORKSERVER_FORKSERVER_ACCEPTOR_H_

#include "absl/time/time.h"
#include "forkserver/connection.h"
#include "forkserver/event_set.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace server_internal {

inline constexpr absl::Duration kAcceptPause = absl::Milliseconds(100);

class Acceptor {
 public:
  // `listener` must outlive the Acceptor; it is read at each call (it may
  // be closed at shutdown, after which OnReadable must not be called).
  Acceptor(const UniqueFd& listener, ConnectionTable& connections,
           EventSet& events)
      : listener_(listener), connections_(connections), events_(events) {}
  Acceptor(const Acceptor&) = delete;
  Acceptor& operator=(const Acceptor&) = delete;

  // Opens the reserve descriptor (/dev/null). Without one, EMFILE leaves
  // pending connections waiting.
  void OpenReserve();

  void OnReadable();

  // When a paused listener is to be watched again; InfiniteFuture() when
  // it is not paused.
  absl::Time resume_at() const { return resume_at_; }
  // Watches the listener again (and retries the reserve).
  void Resume();

 private:
  const UniqueFd& listener_;
  ConnectionTable& connections_;
  EventSet& events_;
  UniqueFd reserve_fd_;
  absl::Time resume_at_ = absl::InfiniteFuture();
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_ACCEPTOR_H_
