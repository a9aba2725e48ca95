#include "lib/base/secure_directory.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace {

std::string Octal(mode_t mode) {
  char text[16];
  std::snprintf(text, sizeof(text), "%o", static_cast<unsigned>(mode & 07777));
  return text;
}

absl::Status Unsafe(absl::string_view shown, absl::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("socket directory path: ", shown, " ", why));
}

// Opens `name` under `parent` (an O_PATH directory) without following a
// symlink, and checks it is a directory.
absl::StatusOr<UniqueFd> OpenComponent(int parent, const std::string& name,
                                       const std::string& shown,
                                       struct stat* st) {
  UniqueFd fd(::openat(parent, name.c_str(),
                       O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) {
    const int error = errno;
    struct stat link;
    if (::fstatat(parent, name.c_str(), &link, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISLNK(link.st_mode)) {
      return Unsafe(shown, "is a symlink; give the real directory");
    }
    if (error == ENOENT) {
      return absl::NotFoundError(absl::StrCat(shown, " does not exist"));
    }
    if (error == ENOTDIR) return Unsafe(shown, "is not a directory");
    return ErrnoError(absl::StrCat("open(", shown, ")"), error);
  }
  if (::fstat(fd.get(), st) != 0) {
    return ErrnoError(absl::StrCat("fstat(", shown, ")"));
  }
  return fd;
}

absl::Status CheckAncestor(const struct stat& st, const std::string& shown) {
  if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
    return Unsafe(shown, absl::StrCat("belongs to uid ", st.st_uid,
                                      ", who could replace what is in it"));
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
    return Unsafe(shown, absl::StrCat("is writable by others (mode ",
                                      Octal(st.st_mode),
                                      ") without the sticky bit"));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> Walk(absl::string_view path, bool check_last) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("directory '", path, "' is not absolute"));
  }
  std::vector<std::string> parts =
      absl::StrSplit(path, '/', absl::SkipEmpty());
  UniqueFd current(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!current) return ErrnoError("open(/)");
  struct stat st;
  if (::fstat(current.get(), &st) != 0) return ErrnoError("fstat(/)");
  std::string shown = "/";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (parts[i] == "." || parts[i] == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("directory '", path, "' has a '.' or '..' component"));
    }
    // The one above is an ancestor of what we open next.
    RETURN_IF_ERROR(CheckAncestor(st, shown));
    shown = absl::StrCat(shown == "/" ? "" : shown, "/", parts[i]);
    ASSIGN_OR_RETURN(current, OpenComponent(current.get(), parts[i], shown, &st));
  }
  if (check_last) RETURN_IF_ERROR(CheckAncestor(st, shown));
  return current;
}

}  // namespace

absl::StatusOr<UniqueFd> OpenTrustedDirectory(absl::string_view path) {
  return Walk(path, /*check_last=*/true);
}

absl::StatusOr<UniqueFd> OpenPrivateDirectory(absl::string_view path) {
  ASSIGN_OR_RETURN(UniqueFd directory, Walk(path, /*check_last=*/false));
  RETURN_IF_ERROR(CheckPrivateDirectory(directory.get(), path));
  return directory;
}

absl::Status CheckPrivateDirectory(int directory_fd, absl::string_view path) {
  struct stat st;
  if (::fstat(directory_fd, &st) != 0) {
    return ErrnoError(absl::StrCat("fstat(", path, ")"));
  }
  if (st.st_uid != ::geteuid()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket directory ", path, " belongs to uid ", st.st_uid,
        ", not to our uid ", ::geteuid()));
  }
  if ((st.st_mode & 07777) != 0700) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket directory ", path, " has mode ", Octal(st.st_mode),
        "; only a private directory (mode 700) is trusted"));
  }
  return absl::OkStatus();
}

std::string PathThroughFd(int directory_fd, absl::string_view name) {
  return absl::StrCat("/proc/self/fd/", directory_fd, "/", name);
}

std::pair<std::string, std::string> SplitDirectoryAndName(
    absl::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return {".", std::string(path)};
  return {slash == 0 ? "/" : std::string(path.substr(0, slash)),
          std::string(path.substr(slash + 1))};
}

}  // namespace forkserver
