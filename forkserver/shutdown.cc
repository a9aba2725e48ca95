#include "forkserver/shutdown.h"

#include <unistd.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "forkserver/server_log.h"
#include "lib/base/monotonic_clock.h"

namespace forkserver {
namespace server_internal {

void Shutdown::Begin(absl::string_view reason) {
  if (started_) return;
  started_ = true;
  deadline_ = MonotonicNow() + options_.grace;
  events_.Unwatch(options_.listener->get());
  std::vector<UniqueFd> listener;
  listener.push_back(std::move(*options_.listener));
  if (options_.closer != nullptr) options_.closer->Release(listener);
  ::unlink(options_.socket_path.c_str());
  if (options_.remove_socket_directory) {
    const size_t slash = options_.socket_path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      ::rmdir(options_.socket_path.substr(0, slash).c_str());
    }
  }
  children_.TerminateAll();
  // Quiet when the owner simply exited; anything else is worth a line.
  if (!options_.has_owner || reason != kOwnerWentAway) {
    Log(absl::StrCat("shutting down: ", reason));
  }
}

bool Shutdown::OnDeadline() {
  if (!killed_) {
    killed_ = true;
    children_.KillRemaining();
    deadline_ = MonotonicNow() + options_.kill_wait;
    return false;
  }
  for (pid_t pid : children_.NonSurvivors()) {
    Log(absl::StrCat("shutting down: child ", pid, " did not die within ",
                     absl::FormatDuration(options_.kill_wait),
                     " of SIGKILL (uninterruptible sleep? frozen?); leaving "
                     "it unreaped, its client gets no exit notice"));
  }
  return true;
}

}  // namespace server_internal
}  // namespace forkserver
