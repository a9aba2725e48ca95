#include "lib/base/standard_fds.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "lib/base/status_macros.h"

namespace forkserver {

std::array<bool, 3> StandardFdsOpen() {
  std::array<bool, 3> open{};
  for (int fd = 0; fd < 3; ++fd) {
    open[fd] = ::fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
  }
  return open;
}

absl::Status EnsureStandardFdsOpen() {
  const std::array<bool, 3> open = StandardFdsOpen();
  for (int fd = 0; fd < 3; ++fd) {
    if (open[fd]) continue;
    // Not O_CLOEXEC: it is a standard descriptor, as inheritable as the
    // one it replaces. open() returns the lowest free number, which is
    // `fd` (every lower one is open by now); dup2 covers the other case.
    const int null = ::open("/dev/null", O_RDWR);
    if (null < 0) {
      return ErrnoError(absl::StrCat("open(/dev/null) for closed fd ", fd));
    }
    if (null != fd) {
      const int placed = ::dup2(null, fd);
      const int dup_errno = errno;
      ::close(null);
      if (placed < 0) {
        return ErrnoError(absl::StrCat("dup2(/dev/null, ", fd, ")"),
                          dup_errno);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status MoveAboveStandardFds(UniqueFd& fd) {
  if (!fd.valid() || fd.get() > 2) return absl::OkStatus();
  const int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) {
    return ErrnoError(absl::StrCat("fcntl(F_DUPFD_CLOEXEC) of fd ", fd.get(),
                                   " above the standard descriptors"));
  }
  fd.reset(moved);
  return absl::OkStatus();
}

}  // namespace forkserver
