// File: lib/client/server_auth.h
// -----------------------------------------------------------------------------
// The client's half of the trust boundary: before a single byte (the hello,
// the environment, our stdio descriptors) goes to a fork server, make sure
// it is one of ours (issue 7, item 13).
//
//   1. The socket's directory is reached without following any symlink,
//      through ancestors nobody else can change, and is ours with mode
//      0700 (lib/base/secure_directory.h); the socket file in it is a
//      socket of ours. We connect through the directory's descriptor.
//   2. Right after connect, the peer is checked: SO_PEERCRED's uid must be
//      our effective uid (and its pid the launched server's, when we
//      launched it); where the kernel has SO_PEERPIDFD, the pidfd it gives
//      must name that same pid, so the answer is about the process that is
//      connected, not one that has since reused its pid.

#ifndef FORKSERVER_LIB_CLIENT_SERVER_AUTH_H_
#define FORKSERVER_LIB_CLIENT_SERVER_AUTH_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

struct ServerSocketPath {
  UniqueFd directory;  // O_PATH, checked
  std::string name;
  // What to connect(): the socket through `directory`.
  std::string connect_path;
};

// Step 1. UNAVAILABLE when the directory or the socket does not exist
// (nobody serves there); FAILED_PRECONDITION naming what is wrong when
// either is not to be trusted.
absl::StatusOr<ServerSocketPath> OpenServerSocketPath(absl::string_view path);

// Step 2, on a connected socket. PERMISSION_DENIED naming the peer's uid
// and pid when it is not ours (or not `expected_pid`, when that is not 0).
absl::Status CheckServerPeer(int socket, pid_t expected_pid);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_CLIENT_SERVER_AUTH_H_
