// File: forkserver/client_fd_closer.h
// -----------------------------------------------------------------------------
// Where the fork server's copies of client descriptors go to be closed.
//
// close() can block: a TCP socket with SO_LINGER and unsent data (cleared
// on receipt, lib/ipc/seqpacket.h, but one queued inside a passed Unix
// socket is out of reach), a FUSE file whose daemon never answers the
// flush. The server has one thread; a client must not be able to stop it.
// So every descriptor that came from a client is handed to a closer
// process (forkserver/child/fd_closer.h) over a socket; the server closes
// its own copy, and only then tells the closer to close its one, which is
// therefore always the last reference.
//
//   ClientFdCloser closer;
//   closer.Start();                 // at server start; logs if it cannot
//   ...
//   closer.Release(packet.fds);     // empties the vector, never blocks
//
// If the closer's queue is full (it is stuck in a close) or it died, it is
// killed and a new one started; if even that fails, the descriptors are
// closed here, as before there was a closer, and that is logged.

#ifndef FORKSERVER_FORKSERVER_CLIENT_FD_CLOSER_H_
#define FORKSERVER_FORKSERVER_CLIENT_FD_CLOSER_H_

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace server_internal {

class ClientFdCloser {
 public:
  ClientFdCloser() = default;
  ClientFdCloser(const ClientFdCloser&) = delete;
  ClientFdCloser& operator=(const ClientFdCloser&) = delete;
  // Closes our end (the closer sees EOF and exits) and SIGKILLs it, in case
  // it is stuck; the server's reaper reaps it like any stranger.
  ~ClientFdCloser();

  // Forks the closer process. Its failure is not fatal: Release then
  // closes in place.
  absl::Status Start();

  // Hands every descriptor in `fds` to the closer and empties `fds`. Never
  // blocks on a close. The first one that needs the closer starts it when
  // Start() was never called (so a process that never gets such a
  // descriptor never forks one).
  void Release(std::vector<UniqueFd>& fds);

  // Times a stuck or dead closer was replaced (for tests and the log).
  int64_t restarts() const { return restarts_; }
  pid_t pid() const { return pid_; }

 private:
  // One message: `what` (kFdCloserHold / kFdCloserCloseNow) with `count`
  // descriptors. False if it could not go without blocking.
  bool Send(char what, const int* fds, int count);
  void Stop();

  UniqueFd socket_;
  UniqueFd pidfd_;
  pid_t pid_ = 0;
  int64_t restarts_ = 0;
  bool started_ = false;  // Once Start() succeeded.
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_CLIENT_FD_CLOSER_H_
