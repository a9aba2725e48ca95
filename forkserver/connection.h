// File: forkserver/connection.h
// -----------------------------------------------------------------------------
// The fork server's client connections, one state machine each:
//
//   accepted -> kAwaitHello --hello--> kAwaitRequest --spawn--> kSettingUp
//       --setup report--> kRunning --exit notice--> kClosing -> closed
//   kAwaitRequest --status--> status reply, kClosing -> closed
//   any stage --error reply--> kClosing -> closed
// A connection whose hello asked for keep_alive goes back to kAwaitRequest
// instead of kClosing after an exit notice or a status reply (RequestDone),
// so the client can send its next request on it; idle there past
// request_timeout it is closed quietly (it served a request: not a
// rejection). Error replies close it as above.
//
// kClosing delivers the last reply: the server shuts its sending side
// (SHUT_WR, so the client reads the reply, then EOF) and reads away
// whatever the client still sends (closing the descriptors that came with
// it) until the client closes or kLingerTime passes; only then is the
// socket closed. Closing a socket with unread input would reset the
// connection and the client would lose the reply (a refused client saw
// "closed by peer" instead of why). Lingering connections do not count
// towards max_connections; past max_lingering of them, a connection is
// closed at once after a last read.
//
// A connection that does not send its hello and request within
// request_timeout is dropped (DropIdle). Anything out of order, malformed,
// truncated or from a peer of another uid is rejected: an error reply, the
// connection closed with every descriptor that came with it, the reason
// logged (forkserver/server_log.h) and counted for the status reply. A
// well-formed spawn the server cannot carry out (no such entry, out of
// resources) gets an error reply without counting as a rejection.
//
// Closing a connection whose child still reports to it disowns the child
// (ChildTable::Disown: a kill_on_disconnect child is SIGKILLed). The exit
// notice itself is built by forkserver/reaper.h and sent through
// NotifyExit(). Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_CONNECTION_H_
#define FORKSERVER_FORKSERVER_CONNECTION_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "forkserver/children.h"
#include "forkserver/client_fd_closer.h"
#include "lib/ipc/seqpacket.h"
#include "forkserver/event_set.h"
#include "forkserver/templates.h"
#include "lib/base/unique_fd.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace server_internal {

struct ConnectionOptions {
  // A connection must send its hello and request within this time.
  absl::Duration request_timeout;
  // One more is accepted and rejected with RESOURCE_EXHAUSTED.
  int max_connections = 0;
  // At most this many connections linger in kClosing at once (at most
  // kMaxLingering; forkserver/fd_budget.h counts them).
  int max_lingering = 0;
  // For the status reply (MonotonicNow() time base).
  absl::Time started;
  absl::Duration preload_duration;
  // Sandboxed spawns go there (connection_sandbox.cc); null: refused.
  TemplateCache* templates = nullptr;
  // Client descriptors are closed there; null: closed in place (tests).
  ClientFdCloser* closer = nullptr;
};

// How long a connection may linger in kClosing, and how many may.
inline constexpr absl::Duration kLingerTime = absl::Seconds(1);
inline constexpr int kMaxLingering = 256;

// An error reply carrying `status`'s code and message.
wire::ServerMessage ErrorMessage(const absl::Status& status);

class ConnectionTable : public SandboxReplies {
 public:
  ConnectionTable(ConnectionOptions options, EventSet& events,
                  ChildTable& children)
      : options_(options), events_(events), children_(children) {}
  ConnectionTable(const ConnectionTable&) = delete;
  ConnectionTable& operator=(const ConnectionTable&) = delete;

  // Takes a freshly accepted socket: watches it, starts its request
  // deadline, then checks the peer's uid and the connection limit
  // (rejecting it when either fails).
  void Accept(UniqueFd socket);
  bool Contains(int fd) const { return connections_.contains(fd); }
  // Reads and acts on one packet from connection `fd` (which must be open).
  void OnReadable(int fd);

  // `pid`'s setup report may be complete (ChildTable::ReadSetupReport):
  // if so, answer its client with the pid and pidfd (-> kRunning), or with
  // the failed step and errno (and close). Nothing while it is incomplete
  // or when the client has left.
  void FinishSetup(pid_t pid);
  // Sends `notice` to the connection `child` reports to (which must be
  // >= 0), detaches the child from it and closes it.
  void NotifyExit(Child& child, const wire::ServerMessage& notice);

  // The earliest request deadline of a connection still awaiting its hello
  // or request; absl::InfiniteFuture() when there is none.
  absl::Time NextDeadline() const;
  // Rejects (DEADLINE_EXCEEDED) every connection past its deadline.
  void DropIdle();

  // Counts a connection refused before it got here (out of descriptors).
  void CountRefusal(absl::string_view why);
  // Closes every connection at once, without replies (shutdown).
  // Closes every connection (shutdown), through the closer.
  void Clear();
  // Every descriptor a client sent, and every client connection, ends
  // here: in the closer process (client_fd_closer.h), so no close() of
  // ours can block the loop (a connection's close purges the packets
  // still queued on it, and closes the descriptors they carry).
  void ReleaseClientFds(std::vector<UniqueFd>& fds);

  // A template's answers (SandboxReplies, in connection_sandbox.cc).
  void SandboxStarted(int connection, pid_t pid) override;
  void SandboxFailed(int connection, const wire::ServerMessage& error) override;
  void SandboxExited(Child& child, const wire::ServerMessage& message) override;

 private:
  enum class Stage {
    kAwaitHello,
    kAwaitRequest,
    kSettingUp,
    kRunning,
    kClosing
  };

  struct Connection {
    UniqueFd socket;
    Stage stage = Stage::kAwaitHello;
    pid_t child = 0;
    // Until the request arrives, a connection idle past it is dropped;
    // in kClosing, the end of its linger.
    absl::Time deadline;
    // Its hello asked for keep_alive; requests it has completed.
    bool keep_alive = false;
    int64_t served = 0;
  };

  void OnMessageWhileRunning(Connection& connection, const Packet& packet);

  static bool AwaitsRequest(const Connection& connection) {
    return connection.stage == Stage::kAwaitHello ||
           connection.stage == Stage::kAwaitRequest;
  }

  // `fds` came with the request; they stay the packet's, and OnReadable
  // hands them to the closer whatever happens here.
  void OnRequest(Connection& connection, const wire::ClientMessage& message,
                 std::vector<UniqueFd>& fds);
  void HandleHello(Connection& connection, const wire::Hello& hello,
                   size_t fd_count);
  void HandleSpawn(Connection& connection, const wire::SpawnRequest& request,
                   std::vector<UniqueFd>& fds);
  void HandleStatus(Connection& connection);
  void HandleSandboxedSpawn(Connection& connection, const wire::SpawnRequest& request,
                            std::vector<UniqueFd>& fds);

  // Closes the connection with an error reply, logs and counts why.
  void Reject(int fd, const absl::Status& why);
  // A request ended well (exit notice, status reply): back to
  // kAwaitRequest for a keep_alive connection, else Finish().
  void RequestDone(int fd);
  // The last reply has been sent: disowns the connection's child (as
  // Close) and moves it to kClosing (or closes it at once when too many
  // linger already).
  void Finish(int fd);
  // kClosing: reads away what the client sends; closes on its EOF.
  void Drain(Connection& connection);
  // Closes the connection; a child it owns loses its reporter (and dies if
  // it was kill-on-disconnect and still running).
  void Close(int fd);
  // Sends one reply; logs a failure other than the peer having left.
  absl::Status Send(int fd, const wire::ServerMessage& message,
                    absl::Span<const int> fds = {});

  const ConnectionOptions options_;
  EventSet& events_;
  ChildTable& children_;
  absl::flat_hash_map<int, Connection> connections_;
  // Connections in kClosing.
  int lingering_ = 0;

  int64_t accepted_total_ = 0;
  int64_t rejected_total_ = 0;
  std::string last_rejection_;
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_CONNECTION_H_
