// File: forkserver/listener.h
// -----------------------------------------------------------------------------
// The fork server's listening socket and who may talk to it.
//
// Trust boundary: a filesystem socket (never an abstract one: those have no
// permissions, CVE-2022-42919), mode 0600, in a directory that is ours and
// not group- or world-writable (0700 when we create it); and on accept, the
// peer's uid (SO_PEERCRED) must be the server's own effective uid. Any
// process running as that uid is trusted.

#ifndef FORKSERVER_FORKSERVER_LISTENER_H_
#define FORKSERVER_FORKSERVER_LISTENER_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/unique_fd.h"

namespace forkserver {

// Longest socket path that fits in sockaddr_un::sun_path with its NUL.
size_t MaxSocketPathLength();

// OK, or INVALID_ARGUMENT when `path` is empty, relative, contains a NUL or
// is longer than MaxSocketPathLength() (a clear error instead of the
// kernel's silent truncation).
absl::Status CheckSocketPath(absl::string_view path);

// Creates a fresh private directory `<base>/forkserver-XXXXXX`, mode 0700.
absl::StatusOr<std::string> MakePrivateDirectory(absl::string_view base);

// Binds and listens on a SOCK_SEQPACKET socket at `path` (mode 0600,
// O_CLOEXEC | O_NONBLOCK). The directory must exist, belong to the
// effective uid and not be group- or world-writable (FAILED_PRECONDITION
// otherwise). A leftover socket file nobody listens on is replaced; one
// with a live listener is ALREADY_EXISTS.
absl::StatusOr<UniqueFd> ListenAt(absl::string_view path);

// Checks the connected peer of `socket` with SO_PEERCRED. OK when its uid
// is `allowed_uid`; PERMISSION_DENIED naming both uids and the peer pid
// otherwise.
absl::Status CheckPeerUid(int socket, uid_t allowed_uid);

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_LISTENER_H_
