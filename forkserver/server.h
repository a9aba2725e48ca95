// File: forkserver/server.h
// -----------------------------------------------------------------------------
// The fork server's event loop: one thread, one epoll set.
//
// It accepts connections on a listening socket (forkserver/listener.h),
// checks each peer's uid, speaks the protocol of proto/wire.proto, forks
// children through forkserver/spawner.h, reaps every child (signalfd +
// wait4), and reports each exit to the client that asked for it.
//
// Nothing a client sends can crash it: a malformed, truncated, oversized or
// out-of-order packet, a refused peer, or an idle connection (slow-loris)
// closes that connection, with every descriptor that came with it, logs the
// reason to stderr and counts it in the status reply. Out of descriptors,
// pids or memory, it answers RESOURCE_EXHAUSTED and keeps serving.
//
// Shutdown (the owner's alive pipe reaches EOF, or SIGTERM; SIGINT/SIGHUP
// when configured): stop accepting, remove the socket, SIGTERM the children
// that were not asked to survive the server, wait up to the grace period,
// SIGKILL the rest, exit. Children also carry PR_SET_PDEATHSIG(SIGKILL), so
// not even a SIGKILLed server leaves them behind.

#ifndef FORKSERVER_FORKSERVER_SERVER_H_
#define FORKSERVER_FORKSERVER_SERVER_H_

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/unique_fd.h"

namespace forkserver {

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
  // A connection must send its hello and request within this time.
  absl::Duration request_timeout = absl::Seconds(5);
  int max_connections = 1024;

  // For the status reply.
  absl::Duration preload_duration;
};

// Serves until shutdown. Returns OK after a clean shutdown, or an error
// when the server itself could not run (epoll/signalfd setup failed).
absl::Status RunForkServer(ServerConfig config);

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_SERVER_H_
