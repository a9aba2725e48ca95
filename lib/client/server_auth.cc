#include "lib/client/server_auth.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "lib/base/secure_directory.h"
#include "lib/base/status_macros.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5.
#endif

namespace forkserver {
namespace {

// The pid a pidfd refers to (its fdinfo's "Pid:" line); -1 once the
// process is gone, 0 when unknown.
pid_t PidOfPidfd(int pidfd) {
  std::ifstream fdinfo(absl::StrCat("/proc/self/fdinfo/", pidfd));
  std::string line;
  while (std::getline(fdinfo, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "Pid:")) {
      int pid = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &pid)) return pid;
    }
  }
  return 0;
}

}  // namespace

absl::StatusOr<ServerSocketPath> OpenServerSocketPath(absl::string_view path) {
  ServerSocketPath result;
  auto [directory, name] = SplitDirectoryAndName(path);
  absl::StatusOr<UniqueFd> opened = OpenPrivateDirectory(directory);
  if (absl::IsNotFound(opened.status())) {
    return absl::UnavailableError(absl::StrCat(
        "no fork server at ", path, ": ", opened.status().message()));
  }
  if (!opened.ok()) return opened.status();
  result.directory = *std::move(opened);
  result.name = name;
  struct stat st;
  if (::fstatat(result.directory.get(), name.c_str(), &st,
                AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) {
      return absl::UnavailableError(
          absl::StrCat("no fork server at ", path, ": no such socket"));
    }
    return ErrnoError(absl::StrCat("lstat(", path, ")"));
  }
  if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is not a socket of uid ", ::geteuid(), " (a ",
        S_ISSOCK(st.st_mode) ? "socket" : "non-socket", " of uid ", st.st_uid,
        "); refusing to talk to it"));
  }
  result.connect_path = PathThroughFd(result.directory.get(), name);
  return result;
}

absl::Status CheckServerPeer(int socket, pid_t expected_pid) {
  ucred peer{};
  socklen_t size = sizeof(peer);
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) {
    return ErrnoError("getsockopt(SO_PEERCRED) of the fork server");
  }
  if (peer.uid != ::geteuid()) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the fork server's socket is held by uid ", peer.uid, " (pid ",
        peer.pid, "), not by our uid ", ::geteuid(),
        "; nothing was sent to it"));
  }
  if (expected_pid != 0 && peer.pid != expected_pid) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the fork server's socket is held by pid ", peer.pid,
        ", not by the server we launched (pid ", expected_pid,
        "); nothing was sent to it"));
  }
  int pidfd = -1;
  size = sizeof(pidfd);
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &size) == 0 &&
      pidfd >= 0) {
    UniqueFd owned(pidfd);
    const pid_t pid = PidOfPidfd(owned.get());
    if (pid > 0 && pid != peer.pid) {
      return absl::PermissionDeniedError(absl::StrCat(
          "SO_PEERPIDFD names pid ", pid, " but SO_PEERCRED pid ", peer.pid,
          "; nothing was sent to the fork server"));
    }
  }
  // Older kernels (ENOPROTOOPT) have SO_PEERCRED only; that is enough for
  // the uid, which is what is trusted.
  return absl::OkStatus();
}

}  // namespace forkserver
