// File: forkserver/server.h
// -----------------------------------------------------------------------------
// The fork server's event loop: one thread, one epoll set.
//
// It accepts connections on a listening socket (forkserver/listener.h),
// checks each peer's uid, speaks the protocol of proto/wire.proto, forks
// children through forkserver/child/spawner.h, reaps every child (signalfd +
// wait4), and reports each exit to the client that asked for it. It is a
// child subreaper (PR_SET_CHILD_SUBREAPER): descendants its children leave
// behind are reaped by it (and counted in the status reply), not by init.
//
// The parts, each in its own file of this package: acceptor.h (accept4),
// connection.h (each connection's state machine), children.h (the children
// table, spawning, setup reports), memfd_args.h (sealed-memfd arguments),
// reaper.h (wait4 and exit notices), shutdown.h, event_set.h (the epoll
// set), warm_pool.h (children forked ahead of entry requests, refilled
// when the loop has nothing else ready); server.cc holds the loop that
// dispatches to them.
//
// Nothing a client sends can crash it: a malformed, truncated, oversized or
// out-of-order packet, a refused peer, or an idle connection (slow-loris)
// closes that connection, with every descriptor that came with it, logs the
// reason to stderr and counts it in the status reply. Out of descriptors
// (at any step: accepting, receiving a request's descriptors, the report
// pipe, the pidfd, a child installing its descriptors), pids or memory, it
// answers RESOURCE_EXHAUSTED and keeps serving.
//
// Shutdown (the owner's alive pipe reaches EOF, or SIGTERM; SIGINT/SIGHUP
// when configured): stop accepting, remove the socket, SIGTERM the children
// that were not asked to survive the server, wait up to the grace period,
// SIGKILL the rest and wait up to shutdown_kill_wait for them to be reaped
// (each client gets its exit notice, signal 9 included), then exit: a child
// that does not die even then (uninterruptible sleep) is logged and left. Children also carry PR_SET_PDEATHSIG(SIGKILL), so
// not even a SIGKILLed server leaves them behind.

#ifndef FORKSERVER_FORKSERVER_SERVER_H_
#define FORKSERVER_FORKSERVER_SERVER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

inline constexpr int kMaxWarmWorkers = 64;

struct ServerConfig {
  // From ListenAt(); its path is removed at shutdown.
  UniqueFd listener;
  std::string socket_path;
  // Also remove the socket's directory at shutdown (it was made for us).
  bool remove_socket_directory = false;

  // Read end of the owner's "alive" pipe; EOF means the owner is gone and
  // the server shuts down. Invalid: no owner (a standalone daemon).
  UniqueFd alive;

  // SIGTERM always shuts down. SIGINT and SIGHUP do too when set; the
  // server an application launches ignores them (a Ctrl-C in the terminal
  // is the application's to handle).
  bool shutdown_on_interrupt = false;

  absl::Duration shutdown_grace = absl::Seconds(1);
  absl::Duration shutdown_kill_wait = absl::Seconds(1);
  // A connection must send its hello and request within this time.
  absl::Duration request_timeout = absl::Seconds(5);
  // Connections served at once (each may hold a running child). At start
  // the server raises its RLIMIT_NOFILE soft limit to the hard limit, and
  // caps this to what that limit carries: about (limit - 84) / 4, since a
  // running child costs its connection, its pidfd and while it sets up
  // its report pipe (forkserver/fd_budget.h). The status reply tells the
  // limit in force.
  int max_connections = 1024;

  // Warm workers (forkserver/warm_pool.h): entry-mode children forked
  // ahead of requests and kept ready, refilled when the loop is idle. 0:
  // every spawn is forked on request. Each costs two descriptors and one
  // idle process. At most kMaxWarmWorkers.
  int warm_workers = 0;

  // For the status reply.
  absl::Duration preload_duration;
};

// Serves until shutdown. Returns OK after a clean shutdown, or an error
// when the server itself could not run (epoll/signalfd setup failed).
absl::Status RunForkServer(ServerConfig config);

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_SERVER_H_
