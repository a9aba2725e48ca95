// Parent-side half of the child-setup protocol: turning a failure record
// into a status. Kept out of child_setup.cc, which must stay
// async-signal-safe.

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/child/child_setup.h"

namespace forkserver {

absl::Status ChildSetupFailureToStatus(const ChildSetupFailure& failure) {
  const ChildStep step = static_cast<ChildStep>(failure.step);
  std::string message =
      absl::StrCat("child setup step '", ChildStepName(step),
                   "' failed: ", std::strerror(failure.error));
  if (step == ChildStep::kExecve || step == ChildStep::kChdir) {
    if (failure.error == ENOENT || failure.error == ENOTDIR) {
      return absl::NotFoundError(message);
    }
    if (failure.error == EACCES || failure.error == EPERM) {
      return absl::PermissionDeniedError(message);
    }
    // The request's own fault: argv + env past what the kernel takes
    // (E2BIG), or a file that is no program (ENOEXEC).
    if (step == ChildStep::kExecve && (failure.error == E2BIG || failure.error == ENOEXEC)) {
      return absl::InvalidArgumentError(message);
    }
  }
  if (failure.error == EMFILE || failure.error == ENFILE ||
      failure.error == ENOMEM || failure.error == EAGAIN) {
    return absl::ResourceExhaustedError(message);
  }
  return absl::InternalError(message);
}

}  // namespace forkserver
