// File: forkserver/shutdown.h
// -----------------------------------------------------------------------------
// The fork server's shutdown, once it has begun (the owner's alive pipe
// reached EOF, SIGTERM, or SIGINT/SIGHUP when configured):
//
// 1. Begin(): stop accepting (the listener is unwatched and closed), remove
//    the socket (and its directory when it was made for us), SIGTERM every
//    child not asked to survive the server, and start the grace period.
// 2. The loop keeps serving its connections and reaping; it is done when
//    Complete(): only survivors are left.
// 3. Otherwise, past deadline(), OnDeadline() SIGKILLs the rest (through
//    their pidfds) and gives them kill_wait to die: the loop goes on
//    reaping, so every client still gets its exit notice (signal 9).
// 4. Past that second deadline, OnDeadline() logs each child that is still
//    there (stuck in uninterruptible sleep, frozen, ...) and gives up on it:
//    shutdown never waits for ever on a child. Its client sees the
//    connection close without a notice.
//
// Children also carry PR_SET_PDEATHSIG(SIGKILL), so not even a SIGKILLed
// server leaves them behind. Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_SHUTDOWN_H_
#define FORKSERVER_FORKSERVER_SHUTDOWN_H_

#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "forkserver/children.h"
#include "forkserver/client_fd_closer.h"
#include "forkserver/event_set.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace server_internal {

// The reason Begin() is given when the owner's alive pipe closed; the one
// reason that is not logged when there is an owner (it simply exited).
inline constexpr absl::string_view kOwnerWentAway =
    "its owner went away (alive pipe closed)";

struct ShutdownOptions {
  // Closed by Begin(); the Acceptor reads it too.
  UniqueFd* listener = nullptr;
  // Where Begin() closes it: connections never accepted are purged with
  // it, and the descriptors their packets carry closed.
  ClientFdCloser* closer = nullptr;
  std::string socket_path;
  bool remove_socket_directory = false;
  // Whether the server has an owner (an alive pipe).
  bool has_owner = false;
  absl::Duration grace;
  // After the SIGKILLs, how long to wait for the children to be reaped.
  absl::Duration kill_wait;
};

class Shutdown {
 public:
  Shutdown(ShutdownOptions options, EventSet& events, ChildTable& children)
      : options_(std::move(options)), events_(events), children_(children) {}
  Shutdown(const Shutdown&) = delete;
  Shutdown& operator=(const Shutdown&) = delete;

  // Starts the shutdown (once; later calls do nothing), logging `reason`.
  void Begin(absl::string_view reason);
  bool started() const { return started_; }
  // Started, and no child is left that should go with the server.
  bool Complete() const { return started_ && children_.OnlySurvivorsLeft(); }
  // End of the current phase (the grace period, then the wait for the
  // SIGKILLed); absl::InfiniteFuture() before Begin().
  absl::Time deadline() const { return deadline_; }
  // Call once deadline() has passed. At the end of the grace period:
  // SIGKILLs every non-survivor, starts the wait for them and returns
  // false (keep looping and reaping). At the end of that wait: logs the
  // children still unreaped and returns true (stop now).
  bool OnDeadline();

 private:
  const ShutdownOptions options_;
  EventSet& events_;
  ChildTable& children_;
  bool started_ = false;
  bool killed_ = false;
  absl::Time deadline_ = absl::InfiniteFuture();
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_SHUTDOWN_H_
