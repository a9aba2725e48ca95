// File: lib/base/secure_directory.h
// -----------------------------------------------------------------------------
// Opening a directory that only we can change, without following symlinks.
//
// Both ends of the fork server's socket trust its directory: the server
// binds and later unlinks in it, the client connects to what is in it. A
// symlink anywhere on the way, or a component someone else can rename,
// lets another user redirect either (issue 7, item 13: a symlink owned by
// nobody in a 1777 directory, re-pointed at a fake server). So the walk
// below opens `path` one component at a time with O_NOFOLLOW, and checks
// each as it holds it:
//   * every ancestor belongs to root or to us, and is not group- or
//     world-writable unless it has the sticky bit (as /tmp has);
//   * the directory itself is a real directory that belongs to our
//     effective uid, with mode exactly 0700.
// What it returns is an O_PATH descriptor of that directory (O_CLOEXEC):
// bind, connect, unlink and friends then go through it (*at() calls, or
// PathThroughFd()), never through the path again.

#ifndef FORKSERVER_LIB_BASE_SECURE_DIRECTORY_H_
#define FORKSERVER_LIB_BASE_SECURE_DIRECTORY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

// Opens every component of the absolute `path` with the ancestor rules
// above and returns the last (an O_PATH descriptor). NOT_FOUND when a
// component does not exist; FAILED_PRECONDITION naming the component when
// it is a symlink, not a directory, or not safe.
absl::StatusOr<UniqueFd> OpenTrustedDirectory(absl::string_view path);

// As OpenTrustedDirectory, and the directory itself must belong to our
// effective uid with mode 0700 (FAILED_PRECONDITION otherwise).
absl::StatusOr<UniqueFd> OpenPrivateDirectory(absl::string_view path);

// Checks an already open directory descriptor against the 0700 rule.
// `path` is only for the message.
absl::Status CheckPrivateDirectory(int directory_fd, absl::string_view path);

// "/proc/self/fd/<fd>/<name>": a path the kernel resolves through the open
// descriptor, not through any name (for bind/connect, which have no *at
// form). Short, whatever the directory's own path.
std::string PathThroughFd(int directory_fd, absl::string_view name);

// Splits "/a/b/c" into {"/a/b", "c"}; "/c" into {"/", "c"}.
std::pair<std::string, std::string> SplitDirectoryAndName(
    absl::string_view path);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_BASE_SECURE_DIRECTORY_H_
