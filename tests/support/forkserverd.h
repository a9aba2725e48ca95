// File: tests/support/forkserverd.h
// -----------------------------------------------------------------------------
// The daemon as the tests run it: tools/forkserverd from the runfiles on a
// socket of the test's own, returned once it answers.

#ifndef FORKSERVER_TESTS_SUPPORT_FORKSERVERD_H_
#define FORKSERVER_TESTS_SUPPORT_FORKSERVERD_H_

#include <sys/resource.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/support/subprocess.h"

namespace forkserver {
namespace testing {

struct ForkserverdStart {
  // More flags after --socket.
  std::vector<std::string> flags;
  // >= 0: the daemon's stderr (else ours).
  int stderr_fd = -1;
  // Started under this RLIMIT_NOFILE (ours is put back afterwards; only
  // root can put back a lowered hard limit).
  std::optional<rlimit> nofile;
};

// Starts forkserverd listening at `socket` and waits, bounded (30 s, a
// condition polled: it accepts a connection), until it answers;
// DEADLINE_EXCEEDED if it never does.
absl::StatusOr<std::unique_ptr<Background>> StartForkserverd(
    const std::string& socket, const ForkserverdStart& how = {});

}  // namespace testing
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_SUPPORT_FORKSERVERD_H_
