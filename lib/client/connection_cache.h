// File: lib/client/connection_cache.h
// -----------------------------------------------------------------------------
// Idle connections to fork servers, kept for the next request so that a
// request costs one round trip on an authenticated connection instead of
// connect + authentication + hello (lib/client/fork_server_client.h).
// Used for daemons reached by socket path (RemoteCommand, forkserverd)
// and for the application's own fork server (up to
// ForkServerOptions::idle_connections of them).
//
// A connection is kept only between requests: after its last reply was
// read (an exit notice, a status reply; an error reply closes it), and
// only when the server agreed to keep it alive (Hello.keep_alive). It is
// handed out again only if it is still quiet (nothing to read: a server
// that died or closed it shows EOF) and younger than its idle limit (half
// the server's idle timeout, so the server never closes one under a
// request). At most `max_idle` (itself at most kMaxIdlePerServer) are kept
// per server; shared by every thread, guarded by a mutex; a forked child
// of the process drops its parent's (the socket is shared with the
// parent) and starts afresh.
// Internal to lib/client.

#ifndef FORKSERVER_LIB_CLIENT_CONNECTION_CACHE_H_
#define FORKSERVER_LIB_CLIENT_CONNECTION_CACHE_H_

#include <sys/types.h>

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace internal {

inline constexpr int kMaxIdlePerServer = 8;

struct IdleConnection {
  UniqueFd socket;
  pid_t server_pid = 0;
  // How long it may stay idle before it is not worth reusing.
  absl::Duration idle_limit;
};

// The most recently kept connection to the server at `socket_path` that
// is still quiet and within its idle limit (stale ones are closed on the
// way), or nullopt.
std::optional<IdleConnection> TakeIdleConnection(const std::string& socket_path);

// Keeps `connection` for the server at `socket_path` (closes it when
// `max_idle`, or kMaxIdlePerServer, are kept already). Closes, on the
// way, every kept connection of any server that is stale (EOF or past its
// limit).
void KeepIdleConnection(const std::string& socket_path,
                        IdleConnection connection,
                        int max_idle = kMaxIdlePerServer);

// Closes every idle connection to the server at `socket_path` (it died or
// was replaced).
void DropIdleConnections(const std::string& socket_path);

// Closes every idle connection, to every server.
void DropAllIdleConnections();

// Idle connections kept now, for every server. For tests.
int IdleConnectionCount();

}  // namespace internal
}  // namespace forkserver

#endif  // FORKSERVER_LIB_CLIENT_CONNECTION_CACHE_H_
