// File: tests/support/subprocess.h
// -----------------------------------------------------------------------------
// Running the project's own programs from tests (Boost.Process, as the
// design has it for tools and tests).

#ifndef FORKSERVER_TESTS_SUPPORT_SUBPROCESS_H_
#define FORKSERVER_TESTS_SUPPORT_SUBPROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace forkserver {
namespace testing {

// A program from this test's runfiles ("tools/forkserverd"), as an
// absolute path.
std::string RunfilesPath(const std::string& relative);

struct Output {
  int exit_code = -1;  // -N for signal N.
  std::string stdout_text;
};

// Runs `program` with `args` to completion, capturing its stdout.
absl::StatusOr<Output> RunProgram(const std::string& program,
                                  const std::vector<std::string>& args);

// A program left running; SIGKILLed and reaped when destroyed.
class Background {
 public:
  // With `stderr_fd` >= 0 the program's stderr is that descriptor (else
  // ours).
  static absl::StatusOr<std::unique_ptr<Background>> Start(
      const std::string& program, const std::vector<std::string>& args,
      int stderr_fd = -1);
  ~Background();
  pid_t pid() const;
  // Sends `sig` and waits for the exit code (-N for signal N).
  absl::StatusOr<int> Stop(int sig, absl::Duration timeout);

 private:
  struct Impl;
  explicit Background(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace testing
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_SUPPORT_SUBPROCESS_H_
