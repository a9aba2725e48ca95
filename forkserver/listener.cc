#include "forkserver/listener.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "lib/status_macros.h"

namespace forkserver {
namespace {

sockaddr_un AddressOf(absl::string_view path) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  return address;
}

std::string DirectoryOf(absl::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == 0) return "/";
  return std::string(path.substr(0, slash));
}

absl::Status CheckDirectory(const std::string& directory) {
  struct stat st;
  if (::stat(directory.c_str(), &st) != 0) {
    return ErrnoError(absl::StrCat("socket directory ", directory));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("socket directory ", directory, " is not a directory"));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket directory ", directory, " belongs to uid ", st.st_uid,
        ", not to the server's uid ", ::geteuid()));
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket directory ", directory,
        " is group- or world-writable (mode ",
        absl::StrCat(absl::Hex(st.st_mode & 07777)),
        "); use a private directory such as one made with mode 0700"));
  }
  return absl::OkStatus();
}

// A socket file is left behind when a server dies without cleaning up.
// Replace it only if nobody is listening on it.
absl::Status RemoveStaleSocket(absl::string_view path) {
  std::string path_string(path);
  struct stat st;
  if (::lstat(path_string.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoError(absl::StrCat("lstat(", path, ")"));
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::AlreadyExistsError(
        absl::StrCat(path, " exists and is not a socket"));
  }
  UniqueFd probe(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!probe) return ErrnoError("socket");
  sockaddr_un address = AddressOf(path);
  if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&address),
                sizeof(address)) == 0) {
    return absl::AlreadyExistsError(
        absl::StrCat("a server is already listening on ", path));
  }
  if (::unlink(path_string.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(absl::StrCat("unlink(", path, ")"));
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

absl::StatusOr<UniqueFd> ListenAt(absl::string_view path) {
  RETURN_IF_ERROR(CheckSocketPath(path));
  RETURN_IF_ERROR(CheckDirectory(DirectoryOf(path)));
  RETURN_IF_ERROR(RemoveStaleSocket(path));

  UniqueFd listener(
      ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener) return ErrnoError("socket(AF_UNIX, SOCK_SEQPACKET)");
  // On Linux bind() gives the new file the socket inode's mode, so set it
  // first: there is no moment where the file is more open than 0600.
  if (::fchmod(listener.get(), 0600) != 0) return ErrnoError("fchmod(0600)");
  sockaddr_un address = AddressOf(path);
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&address),
             sizeof(address)) != 0) {
    return ErrnoError(absl::StrCat("bind(", path, ")"));
  }
  // Belt and braces against a umask or kernel that ignored the fchmod.
  if (::chmod(std::string(path).c_str(), 0600) != 0) {
    return ErrnoError(absl::StrCat("chmod(", path, ", 0600)"));
  }
  if (::listen(listener.get(), SOMAXCONN) != 0) {
    return ErrnoError(absl::StrCat("listen(", path, ")"));
  }
  return listener;
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
