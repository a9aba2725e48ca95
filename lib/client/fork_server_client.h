// File: lib/client/fork_server_client.h
// -----------------------------------------------------------------------------
// The application's side of the fork server: when it is launched, how to
// reach it, and what to do when it dies.
//
// The server is started on first use (the first Process or Pool with start
// method kForkServer, or GetForkServerInfo()), by exec'ing this binary in
// server mode; forkserver::Init() must have been called in main(). If it
// dies, requests in flight fail with UNAVAILABLE (a request has its
// connection to itself until its last reply, so a dead server is an EOF,
// never a hang) and the next request launches a new one.
//
// A connection whose request is done (its exit notice or status reply was
// read) is kept for the next request, up to
// ForkServerOptions::idle_connections of them, so that a request costs one
// round trip on an authenticated connection instead of connect, peer check
// and hello (lib/client/connection_cache.h; daemons' connections are kept
// the same way: ReuseOrConnectToSocket below). A kept connection whose
// server died shows EOF and is dropped, so the request relaunches as
// without it; a server dying once a request is sent fails that request. A forked child of the
// application does not share its parent's server: it launches its own when
// it needs one (as CPython's forkserver does).

#ifndef FORKSERVER_LIB_CLIENT_FORK_SERVER_CLIENT_H_
#define FORKSERVER_LIB_CLIENT_FORK_SERVER_CLIENT_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lib/client/connection_cache.h"
#include "lib/ipc/seqpacket.h"
#include "lib/base/unique_fd.h"
#include "proto/wire.pb.h"

namespace forkserver {

struct ForkServerOptions {
  // Where the server's private socket directory is made. Empty:
  // $FORKSERVER_RUNTIME_DIR if set, else $XDG_RUNTIME_DIR if set (and short
  // enough for sun_path), else /tmp. Directories there left by dead servers
  // (forkserver-*, their lock not held) are removed at each launch. The socket path must fit in
  // sun_path (107 bytes); a longer one is an INVALID_ARGUMENT error, never
  // a silent truncation.
  std::string runtime_dir;
  // Launch plus preloads must finish within this.
  absl::Duration start_timeout = absl::Seconds(120);
  // Hello, spawn request and reply must finish within this (a server that
  // is alive but stuck, e.g. SIGSTOPped, gives DEADLINE_EXCEEDED).
  absl::Duration request_timeout = absl::Seconds(10);
  // Warm workers the server keeps ready (forkserver/warm_pool.h): entry
  // workers forked ahead of requests, so that a start costs a message, not
  // a fork. Each is an idle process (its private memory is small: it
  // shares the server's pages) and two of the server's descriptors. 0:
  // every worker is forked on request. At most 64.
  int warm_workers = 2;
  // Connections to the server kept open between requests, so that the
  // next Process or Pool worker start (or status request) skips connect,
  // the peer check and the hello. Each is one descriptor of this process
  // (O_CLOEXEC, above 2). One idle for more than half the server's idle
  // timeout (5 s) is not reused, and is closed at the next request; all
  // are closed by StopForkServer() and CloseIdleConnections(). A forked
  // child never uses (nor closes) the ones it inherits. 0: a connection
  // per request, so that nothing of a Process or Pool stays open once it
  // is joined (any kept before are closed at the next request). At most
  // internal::kMaxIdlePerServer (8). Read at each request.
  int idle_connections = 4;
  // Exec the server with LD_BIND_NOW=1 (unless the application set
  // LD_BIND_NOW itself), so that the dynamic linker binds every symbol
  // once, in the server, instead of in each worker on its first call
  // through each lazily bound slot (measured: about 20 page faults and
  // 50-100 us of every warm worker's start + join). The server removes the
  // variable from its environment before its preloads, but the binding
  // mode stays for its life and its workers': a dlopen(RTLD_LAZY) of a
  // library with unresolved symbols then fails in preloads and workers as
  // RTLD_NOW would, and /proc/PID/environ of the server and its workers
  // still shows the variable. Off by default for that reason.
  bool bind_symbols_at_launch = false;
};

// Options for the next launch (a running server keeps its own).
void SetForkServerOptions(const ForkServerOptions& options);
ForkServerOptions GetForkServerOptions();

struct ForkServerInfo {
  pid_t pid = 0;
  std::string socket_path;
  absl::Duration uptime;
  absl::Duration preload_time;
  int live_children = 0;
  int64_t spawned_total = 0;
  int open_connections = 0;
  int open_fds = 0;
  // Connections accepted since it started.
  int64_t accepted_total = 0;
  // Connections the server closed for malformed or refused requests.
  int64_t rejected_total = 0;
  std::string last_rejection;
  // Warm workers: kept ready (the option in force), ready now and their
  // pids, workers a warm one served, ready ones that died unused.
  int warm_target = 0;
  int warm_ready = 0;
  int64_t warm_hits = 0;
  int64_t warm_idle_deaths = 0;
  std::vector<pid_t> warm_pids;
};

// Asks the server for its status, launching it first if needed.
absl::StatusOr<ForkServerInfo> GetForkServerInfo();

// Asks the running server (if any) to shut down (it SIGTERMs its children
// first) and waits up to `timeout` for it to exit. DEADLINE_EXCEEDED if it
// did not; then it is killed.
absl::Status StopForkServer(absl::Duration timeout = absl::Seconds(5));

// Closes every connection this process keeps idle for reuse: to its fork
// server (ForkServerOptions::idle_connections) and to daemons
// (RemoteCommand). The next request connects afresh. For a caller that
// wants its descriptor table back to what it was before it used the
// server.
void CloseIdleConnections();

namespace internal {

// A connection to a live server (launched or relaunched first when
// needed), its hello sent but not yet answered: the answer is read together
// with the answer to the one request that follows, so a request costs one
// round trip.
struct ServerReply {
  wire::ServerMessage message;
  std::vector<UniqueFd> fds;
};
class ServerConnection {
 public:
  // A fresh connection, its hello sent. With a non-empty `reuse_key` (the
  // server's socket path) the hello asked for keep_alive, and Release()
  // keeps the connection for the next request if the server agreed.
  ServerConnection(UniqueFd socket, pid_t server_pid,
                   std::string reuse_key = "")
      : socket_(std::move(socket)),
        server_pid_(server_pid),
        reuse_key_(std::move(reuse_key)) {}
  // One taken from the idle set: no hello to answer.
  static ServerConnection Reused(std::string reuse_key,
                                 IdleConnection idle);
  // Release() keeps at most this many idle for its server (default
  // kMaxIdlePerServer).
  void set_max_idle(int max_idle) { max_idle_ = max_idle; }

  // Sends `request` with `fds`, checks the server's hello reply (on a
  // fresh connection), and returns its reply to `request`. Errors:
  // UNAVAILABLE when the server went away (saying how), DEADLINE_EXCEEDED
  // after the request timeout, or the error the server answered with
  // ("fork server: ...").
  absl::StatusOr<ServerReply> Request(const wire::ClientMessage& request,
                                      absl::Span<const int> fds = {});

  bool valid() const { return socket_.valid(); }
  int socket() const { return socket_.get(); }
  // 0 until known (a server we did not launch tells it in its hello).
  pid_t server_pid() const { return server_pid_; }
  // The request's last reply has been read (its exit notice, a status
  // reply): the connection goes back to the idle set when the server
  // keeps it alive, else it is closed. Invalid afterwards.
  void Release();

 private:
  absl::StatusOr<ServerReply> Receive(absl::Time deadline);

  UniqueFd socket_;
  pid_t server_pid_;
  std::string reuse_key_;
  bool hello_pending_ = true;
  // The server agreed to keep it alive; how long it may idle here.
  bool reusable_ = false;
  absl::Duration idle_limit_;
  int max_idle_ = kMaxIdlePerServer;
};

// A connection to this process's fork server (launched or relaunched
// first when needed): an idle one when ForkServerOptions::idle_connections
// allows and one is kept, else a fresh one, its hello sent (asking for
// keep_alive when connections are kept).
absl::StatusOr<ServerConnection> ConnectToForkServer();

// A fresh connection to the fork server listening at `socket_path` (one
// this process did not launch, e.g. tools/forkserverd), its hello sent
// (without keep_alive: the server closes it after one request).
// UNAVAILABLE when nobody listens there. Before the hello: the socket's
// directory must be ours, mode 0700, reached without symlinks
// (FAILED_PRECONDITION), and the peer must run as our uid
// (PERMISSION_DENIED); lib/client/server_auth.h.
absl::StatusOr<ServerConnection> ConnectToSocket(const std::string& socket_path);

// As ConnectToSocket, but an idle connection to that server is reused
// when there is one, and a fresh one asks for keep_alive, so Release()
// can keep it. The server's authentication was checked when the
// connection was made; a server that died or closed it since is seen
// (EOF) before anything is sent on it.
absl::StatusOr<ServerConnection> ReuseOrConnectToSocket(
    const std::string& socket_path);

// How many requests are waiting for the fork server's answer right now
// (hello or spawn). For tests and monitoring.
int PendingServerRequests();

// Waits for a packet from the server on `socket`, counted in
// PendingServerRequests() while it waits. As ReceivePacket().
absl::Status ReceiveFromServer(int socket, absl::Time deadline,
                               Packet* packet);

// Why the connection to server `server_pid` ended: "fork server (pid N)
// went away: killed by signal 9". Waits up to 100 ms for the exit to be
// observable.
std::string DescribeServerLoss(pid_t server_pid);

}  // namespace internal
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CLIENT_FORK_SERVER_CLIENT_H_
