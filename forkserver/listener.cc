#include "forkserver/listener.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "lib/base/secure_directory.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace {

sockaddr_un AddressOf(absl::string_view path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(),
              std::min(path.size(), sizeof(address.sun_path) - 1));
  return address;
}

// The socket's directory, made when asked (mkdirat under its parent's
// descriptor: no symlink can redirect it).
absl::Status OpenDirectories(const ListenOptions& options,
                             ListeningSocket& socket) {
  auto [directory, name] = SplitDirectoryAndName(socket.path);
  socket.name = name;
  auto [parent, directory_name] = SplitDirectoryAndName(directory);
  socket.directory_name = directory_name;
  ASSIGN_OR_RETURN(socket.parent, OpenTrustedDirectory(parent));
  if (options.create_directory &&
      ::mkdirat(socket.parent.get(), directory_name.c_str(), 0700) != 0 &&
      errno != EEXIST) {
    return ErrnoError(absl::StrCat("mkdir(", directory, ")"));
  }
  ASSIGN_OR_RETURN(socket.directory, OpenPrivateDirectory(directory));
  return absl::OkStatus();
}

bool SameFile(int fd, int directory_fd, const std::string& name) {
  struct stat held, named;
  return ::fstat(fd, &held) == 0 &&
         ::fstatat(directory_fd, name.c_str(), &named, AT_SYMLINK_NOFOLLOW) ==
             0 &&
         held.st_dev == named.st_dev && held.st_ino == named.st_ino;
}

absl::StatusOr<UniqueFd> AdoptLock(int held, const ListeningSocket& socket) {
  UniqueFd lock(::fcntl(held, F_DUPFD_CLOEXEC, 3));
  if (!lock) return ErrnoError("fcntl(F_DUPFD_CLOEXEC) of the held lock");
  // Re-locking through the same open file description succeeds; any other
  // holder makes it fail.
  if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0 ||
      !SameFile(lock.get(), socket.directory.get(),
                LockFileName(socket.name))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the lock descriptor passed in is not the held lock of ",
        socket.path));
  }
  return lock;
}

// With the lock held, whatever is at the socket's name was left by a
// server that is gone -- unless an older, lockless server still answers.
absl::Status RemoveStaleSocket(const ListeningSocket& socket) {
  struct stat st;
  if (::fstatat(socket.directory.get(), socket.name.c_str(), &st,
                AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(absl::StrCat("lstat(", socket.path, ")"));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::AlreadyExistsError(
        absl::StrCat(socket.path, " exists and is not a socket"));
  }
  UniqueFd probe(
      ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!probe) return ErrnoError("socket");
  sockaddr_un address = AddressOf(socket.PathThroughDirectory());
  if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&address),
                sizeof(address)) == 0 ||
      errno == EAGAIN) {
    return absl::AlreadyExistsError(absl::StrCat(
        "a server without the lock is listening on ", socket.path));
  }
  if (errno != ECONNREFUSED) {
    return ErrnoError(absl::StrCat("probe connect(", socket.path,
                                   "); left the socket file alone"));
  }
  if (::unlinkat(socket.directory.get(), socket.name.c_str(), 0) != 0 &&
      errno != ENOENT) {
    return ErrnoError(absl::StrCat("unlink(", socket.path, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

size_t MaxSocketPathLength() { return sizeof(sockaddr_un::sun_path) - 1; }

absl::Status CheckSocketPath(absl::string_view path) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path '", path, "' is not absolute"));
  }
  if (path.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError("socket path contains a NUL byte");
  }
  if (path.size() > MaxSocketPathLength()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path '", path, "' is ", path.size(),
        " bytes long; a Unix socket path holds at most ",
        MaxSocketPathLength(),
        " (sun_path). Choose a shorter runtime directory "
        "(ForkServerOptions::runtime_dir or FORKSERVER_RUNTIME_DIR)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MakePrivateDirectory(absl::string_view base) {
  std::string pattern = absl::StrCat(base, "/forkserver-XXXXXX");
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {  // mkdtemp makes it 0700.
    return ErrnoError(absl::StrCat("mkdtemp(", pattern, ")"));
  }
  return std::string(buffer.data());
}

std::string LockFileName(absl::string_view socket_name) {
  return absl::StrCat(socket_name, ".lock");
}

absl::StatusOr<UniqueFd> TakeServerLock(int directory_fd,
                                        absl::string_view socket_name,
                                        absl::string_view shown_path) {
  const std::string name = LockFileName(socket_name);
  // A lock file unlinked by a server that was just leaving would be a lock
  // on nothing: lock, then check the name still leads to what we locked.
  for (int attempt = 0; attempt < 3; ++attempt) {
    UniqueFd lock(::openat(directory_fd, name.c_str(),
                           O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!lock) {
      return ErrnoError(absl::StrCat("open(", shown_path, ".lock)"));
    }
    if (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK) {
        return ErrnoError(absl::StrCat("flock(", shown_path, ".lock)"));
      }
      char holder[32] = {};
      (void)!::pread(lock.get(), holder, sizeof(holder) - 1, 0);
      return absl::AlreadyExistsError(absl::StrCat(
          "another fork server", holder[0] ? " (pid " : "",
          absl::StripAsciiWhitespace(holder), holder[0] ? ")" : "",
          " holds ", shown_path, ".lock and serves ", shown_path));
    }
    if (!SameFile(lock.get(), directory_fd, name)) continue;
    const std::string pid = absl::StrCat(::getpid(), "\n");
    if (::ftruncate(lock.get(), 0) == 0) {
      (void)!::pwrite(lock.get(), pid.data(), pid.size(), 0);
    }
    return lock;
  }
  return absl::UnavailableError(
      absl::StrCat(shown_path, ".lock kept changing under us"));
}

std::string ListeningSocket::PathThroughDirectory() const {
  return PathThroughFd(directory.get(), name);
}

void ListeningSocket::RemoveFiles(bool remove_directory) {
  if (!directory) return;
  ::unlinkat(directory.get(), name.c_str(), 0);
  ::unlinkat(directory.get(), LockFileName(name).c_str(), 0);
  if (remove_directory && parent) {
    ::unlinkat(parent.get(), directory_name.c_str(), AT_REMOVEDIR);
  }
}

absl::StatusOr<ListeningSocket> ListenAt(absl::string_view path,
                                         const ListenOptions& options) {
  RETURN_IF_ERROR(CheckSocketPath(path));
  ListeningSocket socket;
  socket.path = std::string(path);
  RETURN_IF_ERROR(OpenDirectories(options, socket));
  if (options.held_lock >= 0) {
    ASSIGN_OR_RETURN(socket.lock, AdoptLock(options.held_lock, socket));
  } else {
    ASSIGN_OR_RETURN(socket.lock, TakeServerLock(socket.directory.get(),
                                                 socket.name, socket.path));
  }
  RETURN_IF_ERROR(RemoveStaleSocket(socket));

  socket.listener.reset(
      ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!socket.listener) return ErrnoError("socket(AF_UNIX, SOCK_SEQPACKET)");
  // On Linux bind() gives the new file the socket inode's mode, so set it
  // first: there is no moment where the file is more open than 0600.
  if (::fchmod(socket.listener.get(), 0600) != 0) {
    return ErrnoError("fchmod(0600)");
  }
  // Bound by its real name (what /proc/net/unix and getsockname show).
  // Safe: the walk above found no symlink, and no ancestor that anyone
  // but root or we could change.
  sockaddr_un address = AddressOf(path);
  if (::bind(socket.listener.get(), reinterpret_cast<sockaddr*>(&address),
             sizeof(address)) != 0) {
    return ErrnoError(absl::StrCat("bind(", path, ")"));
  }
  // Belt and braces against a kernel that ignored the fchmod.
  if (::fchmodat(socket.directory.get(), socket.name.c_str(), 0600, 0) != 0) {
    return ErrnoError(absl::StrCat("chmod(", path, ", 0600)"));
  }
  if (::listen(socket.listener.get(), SOMAXCONN) != 0) {
    return ErrnoError(absl::StrCat("listen(", path, ")"));
  }
  return socket;
}

int ReclaimStaleServerDirectories(absl::string_view runtime_dir) {
  absl::StatusOr<UniqueFd> runtime = OpenTrustedDirectory(runtime_dir);
  if (!runtime.ok()) return 0;
  const int listing = ::openat(runtime->get(), ".",
                               O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing < 0) return 0;
  DIR* dir = ::fdopendir(listing);
  if (dir == nullptr) {
    ::close(listing);
    return 0;
  }
  std::vector<std::string> candidates;
  while (dirent* entry = ::readdir(dir)) {
    if (absl::StartsWith(entry->d_name, "forkserver-")) {
      candidates.push_back(entry->d_name);
    }
  }
  ::closedir(dir);
  int reclaimed = 0;
  const std::string lock_name = LockFileName("socket");
  for (const std::string& name : candidates) {
    UniqueFd directory(::openat(runtime->get(), name.c_str(),
                                O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!directory ||
        !CheckPrivateDirectory(directory.get(), name).ok()) {
      continue;
    }
    UniqueFd lock(::openat(directory.get(), lock_name.c_str(),
                           O_RDWR | O_NOFOLLOW | O_CLOEXEC));
    if (!lock || ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) continue;
    // An empty lock file is one being set up (its holder writes its pid
    // right after taking it): not ours to judge.
    struct stat st;
    if (::fstat(lock.get(), &st) != 0 || st.st_size == 0) continue;
    // Ours now: nobody else will take it (a new server makes its own
    // directory). Everything in it is a dead server's.
    ::unlinkat(directory.get(), "socket", 0);
    ::unlinkat(directory.get(), lock_name.c_str(), 0);
    if (::unlinkat(runtime->get(), name.c_str(), AT_REMOVEDIR) == 0) {
      ++reclaimed;
    }
  }
  return reclaimed;
}

absl::Status CheckPeerUid(int socket, uid_t allowed_uid) {
  ucred credentials{};
  socklen_t size = sizeof(credentials);
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &size) !=
      0) {
    return ErrnoError("getsockopt(SO_PEERCRED)");
  }
  if (credentials.uid != allowed_uid) {
    return absl::PermissionDeniedError(absl::StrCat(
        "peer uid ", credentials.uid, " (pid ", credentials.pid,
        ") is not allowed; this fork server serves uid ", allowed_uid,
        " only"));
  }
  return absl::OkStatus();
}

}  // namespace forkserver
