// File: tests/support/test_util.h
// -----------------------------------------------------------------------------
// Helpers shared by the tests: status matchers (Abseil 20220623 has none),
// pipes, and reading what a worker reported.

#ifndef FORKSERVER_TESTS_SUPPORT_TEST_UTIL_H_
#define FORKSERVER_TESTS_SUPPORT_TEST_UTIL_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/process/start_method.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace testing {

inline const absl::Status& StatusOf(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

MATCHER(IsOk, "is OK") {
  if (StatusOf(arg).ok()) return true;
  *result_listener << "status is " << StatusOf(arg);
  return false;
}

// Both take << for more context.
#define ASSERT_OK(expr) ASSERT_THAT((expr), ::forkserver::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::forkserver::testing::IsOk())

MATCHER_P(StatusIs, code, "") {
  if (arg.code() == code) return true;
  *result_listener << "status is " << arg;
  return false;
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  if (arg.code() != code) {
    *result_listener << "status is " << arg;
    return false;
  }
  return ::testing::ExplainMatchResult(
      message_matcher, std::string(arg.message()), result_listener);
}

// A fresh 0700 directory under /tmp for one test's sockets. Its name is
// not `forkserver-*`, so a server started by a test running alongside
// (ReclaimStaleServerDirectories scans /tmp) never takes it for a dead
// server's directory and removes it between two of this test's steps.
absl::StatusOr<std::string> MakeTestDirectory();

// pipe2(O_CLOEXEC): {read end, write end}.
std::pair<UniqueFd, UniqueFd> MakePipe();

// Reads `fd` until EOF or `timeout`.
std::string ReadUntilEof(int fd, absl::Duration timeout = absl::Seconds(30));

// Writes all of `text` to `fd`; false on error.
bool WriteAll(int fd, const std::string& text);

// Every start method usable here, for value-parameterised tests.
std::vector<StartMethod> TestedStartMethods();
// All three start methods, for INSTANTIATE_TEST_SUITE_P (a suite skips the
// ones a build cannot test, saying why: pool_fixture.h).
inline auto EveryStartMethod() {
  return ::testing::Values(StartMethod::kFork, StartMethod::kForkServer,
                           StartMethod::kSpawn);
}
std::string MethodTestName(
    const ::testing::TestParamInfo<StartMethod>& info);

// Signals a worker can die of in tests: SIGKILL, SIGTERM, SIGABRT,
// SIGUSR1, and SIGSEGV except under AddressSanitizer (which turns a SIGSEGV
// in a freshly exec'd worker into its own report and an abort).
std::vector<int> FatalSignalsForTests();

// Pids of zombie children of `parent` (scanning /proc).
std::vector<pid_t> ZombieChildrenOf(pid_t parent);

// Threads of this process (from /proc/self/task).
int ThreadCount();

// Open descriptor numbers of process `pid` (from /proc/<pid>/fd).
std::vector<int> OpenFds(pid_t pid);

// "Max open files" soft limit of process `pid`, as /proc/<pid>/limits
// spells it ("1024", "unlimited"); empty if it cannot be read.
std::string SoftFdLimitOf(pid_t pid);

// Waits (polling, with a generous deadline) until `condition` holds: for
// states the code under test reaches on its own time, with no event to
// wait on. False when the deadline passed.
template <typename Condition>
bool Eventually(Condition condition, absl::Duration timeout = absl::Seconds(30)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

// True once process `pid` has exited (or is gone): its pidfd is readable.
bool Exited(pid_t pid);

}  // namespace testing
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_SUPPORT_TEST_UTIL_H_
