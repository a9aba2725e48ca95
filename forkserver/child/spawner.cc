// Parent-side helpers of the spawner: reading a child's setup report and
// counting threads. Nothing here runs in a child.
#include "forkserver/child/spawner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/base/wait_readable.h"
#include "lib/base/status_macros.h"

namespace forkserver {

absl::Status ChildSetupResult(const char* bytes, size_t size,
                              ChildSetupFailure* failure_out) {
  if (size == 0) return absl::OkStatus();
  if (size != sizeof(ChildSetupFailure)) {
    return absl::InternalError(absl::StrCat(
        "child setup report of ", size, " bytes (expected 0 or ",
        sizeof(ChildSetupFailure), ")"));
  }
  ChildSetupFailure failure;
  std::memcpy(&failure, bytes, sizeof(failure));
  if (failure_out != nullptr) *failure_out = failure;
  return ChildSetupFailureToStatus(failure);
}

absl::Status AwaitChildSetup(int report_fd, absl::Time deadline) {
  // A whole failure record, or EOF with nothing (success).
  char buffer[sizeof(ChildSetupFailure)];
  size_t size = 0;
  while (size < sizeof(buffer)) {
    if (!WaitReadable(report_fd, deadline)) {
      return absl::DeadlineExceededError("child setup did not finish in time");
    }
    ssize_t n = ::read(report_fd, buffer + size, sizeof(buffer) - size);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return ErrnoError("read of the child's setup report");
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  return ChildSetupResult(buffer, size);
}

absl::StatusOr<int> CountThreads() {
  // In procfs, a directory's link count is 2 + its subdirectories: one per
  // thread under /proc/self/task. One stat() instead of a directory scan.
  struct stat st;
  if (::stat("/proc/self/task", &st) != 0) {
    return ErrnoError("stat(/proc/self/task)");
  }
  return static_cast<int>(st.st_nlink) - 2;
}

}  // namespace forkserver
