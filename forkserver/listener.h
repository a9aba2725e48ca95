// File: forkserver/listener.h
// -----------------------------------------------------------------------------
// The fork server's listening socket, the lock that says a live server
// serves it, and who may talk to it.
//
// Trust boundary: a filesystem socket (never an abstract one: those have no
// permissions, CVE-2022-42919), mode 0600, in a directory that belongs to
// the server's uid with mode 0700, reached without following any symlink
// and through ancestors nobody else can change (lib/base/secure_directory.h);
// and on accept, the peer's uid (SO_PEERCRED) must be the server's own
// effective uid. Any process running as that uid is trusted.
//
// One server per socket: `<socket>.lock` in the socket's directory is
// flock()ed (LOCK_EX, O_CLOEXEC) for the server's whole life. Only its
// holder may remove or replace the socket file, so two servers starting
// together on one path cannot unlink each other's live socket, and a
// directory whose lock nobody holds belongs to a dead server
// (ReclaimStaleServerDirectories).

#ifndef FORKSERVER_FORKSERVER_LISTENER_H_
#define FORKSERVER_FORKSERVER_LISTENER_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

// Longest socket path that fits in sockaddr_un::sun_path with its NUL.
size_t MaxSocketPathLength();

// OK, or INVALID_ARGUMENT when `path` is empty, relative, contains a NUL or
// is longer than MaxSocketPathLength() (a clear error instead of the
// kernel's silent truncation).
absl::Status CheckSocketPath(absl::string_view path);

// Creates a fresh private directory `<base>/forkserver-XXXXXX`, mode 0700.
absl::StatusOr<std::string> MakePrivateDirectory(absl::string_view base);

// "socket" -> "socket.lock": the lock file next to a socket.
std::string LockFileName(absl::string_view socket_name);

// Opens (creating, 0600, O_NOFOLLOW | O_CLOEXEC) and flock()s the lock of
// socket `socket_name` in `directory_fd`, without blocking.
// ALREADY_EXISTS, with the holder's pid when it wrote one, when a live
// server holds it.
absl::StatusOr<UniqueFd> TakeServerLock(int directory_fd,
                                        absl::string_view socket_name,
                                        absl::string_view shown_path);

struct ListenOptions {
  // Make the socket's directory (0700, through its parent's descriptor)
  // when it does not exist.
  bool create_directory = false;
  // A descriptor of the socket's lock file that the caller already holds
  // (TakeServerLock; the launcher passes its own on), or -1: take it here.
  int held_lock = -1;
};

// All a server holds for its life. Moving it keeps the lock.
struct ListeningSocket {
  UniqueFd listener;   // SOCK_SEQPACKET, listening, O_CLOEXEC|O_NONBLOCK
  UniqueFd parent;     // O_PATH: the directory's parent
  UniqueFd directory;  // O_PATH: the socket's directory
  UniqueFd lock;       // flock()ed
  std::string path;    // as given
  std::string directory_name;
  std::string name;    // the socket's file name

  // The socket file reached through `directory` ("/proc/self/fd/N/name"):
  // what ServerConfig::socket_path gets, so that the server's unlink at
  // shutdown can never be sent elsewhere by a renamed or symlinked path.
  std::string PathThroughDirectory() const;
  // At the end of the server's life, still holding the lock: removes the
  // socket file and the lock file through `directory`, and with
  // `remove_directory` the directory itself (through `parent`, if empty).
  void RemoveFiles(bool remove_directory);
};

// Binds and listens on `path` (mode 0600). The directory must pass
// OpenPrivateDirectory (FAILED_PRECONDITION: a symlink on the way, another
// owner, a mode other than 0700). With the lock held, a leftover socket
// file is removed unless a lockless server still answers on it
// (non-blocking probe; ALREADY_EXISTS then). A live server holding the
// lock: ALREADY_EXISTS. Anything but a socket at `path`: ALREADY_EXISTS.
absl::StatusOr<ListeningSocket> ListenAt(absl::string_view path,
                                         const ListenOptions& options = {});

// Removes the `forkserver-*` directories of `runtime_dir` that belong to
// us (mode 0700, no symlinks) and whose socket lock exists and is not
// held: their server is dead. Directories without a lock file are left
// alone (a launcher may be setting one up). Returns how many went.
int ReclaimStaleServerDirectories(absl::string_view runtime_dir);

// Checks the connected peer of `socket` with SO_PEERCRED. OK when its uid
// is `allowed_uid`; PERMISSION_DENIED naming both uids and the peer pid
// otherwise.
absl::Status CheckPeerUid(int socket, uid_t allowed_uid);

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_LISTENER_H_
