#include "tests/support/forkserverd.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/client/fork_server_client.h"

namespace forkserver {
namespace testing {

absl::StatusOr<std::unique_ptr<Background>> StartForkserverd(
    const std::string& socket, const ForkserverdStart& how) {
  std::vector<std::string> flags = {absl::StrCat("--socket=", socket)};
  flags.insert(flags.end(), how.flags.begin(), how.flags.end());
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  if (how.nofile.has_value() && ::setrlimit(RLIMIT_NOFILE, &*how.nofile) != 0) {
    return absl::ErrnoToStatus(errno, "setrlimit(RLIMIT_NOFILE) for forkserverd");
  }
  absl::StatusOr<std::unique_ptr<Background>> daemon =
      Background::Start(RunfilesPath("tools/forkserverd"), flags, how.stderr_fd);
  if (how.nofile.has_value()) ::setrlimit(RLIMIT_NOFILE, &saved);
  if (!daemon.ok()) return daemon.status();
  // Ready when it answers (a condition, polled; not a guess).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!internal::ConnectToSocket(socket).ok()) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("forkserverd did not come up on ", socket));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return daemon;
}

}  // namespace testing
}  // namespace forkserver
