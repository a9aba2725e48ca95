// A failing preload, or one that leaves a thread behind, is a clear error
// from Start(), and the server does not linger.

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

// Behaves as FORKSERVER_TEST_PRELOAD says, read in the process that runs
// it (the server inherits the test's environment at launch).
FORKSERVER_PRELOAD(Configurable) {
  const char* mode = std::getenv("FORKSERVER_TEST_PRELOAD");
  const std::string what = mode == nullptr ? "" : mode;
  if (what == "fail") return absl::DataLossError("the model file is corrupt");
  if (what == "throw") throw std::runtime_error("no model file");
  if (what == "thread") {
    std::thread([] {
      while (true) ::pause();
    }).detach();
  }
  return absl::OkStatus();
}

FORKSERVER_ENTRY(Nothing, absl::string_view) { return 0; }

ProcessOptions With(StartMethod method) {
  ProcessOptions options;
  options.start_method = method;
  return options;
}

TEST(PreloadFailureTest, FailingPreloadFailsForkServerStart) {
  ::setenv("FORKSERVER_TEST_PRELOAD", "fail", 1);
  Process process("Nothing", "", With(StartMethod::kForkServer));
  EXPECT_THAT(process.Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("preload 'Configurable' failed: DATA_LOSS: "
                                 "the model file is corrupt")));
  // Every attempt tries a fresh server (the failure may be transient).
  ::setenv("FORKSERVER_TEST_PRELOAD", "ok", 1);
  Process next("Nothing", "", With(StartMethod::kForkServer));
  ASSERT_OK(next.Start());
  ASSERT_OK(next.Join());
  ASSERT_OK(StopForkServer());
}

// Issue 7 item 19: a throwing preload aborted the server.
TEST(PreloadFailureTest, ThrowingPreloadIsAStatusNamingItAndTheException) {
  ::setenv("FORKSERVER_TEST_PRELOAD", "throw", 1);
  Process process("Nothing", "", With(StartMethod::kForkServer));
  EXPECT_THAT(process.Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("preload 'Configurable' threw "
                                 "std::runtime_error: no model file")));
  ::setenv("FORKSERVER_TEST_PRELOAD", "ok", 1);
}

TEST(PreloadFailureTest, PreloadThatStartsAThreadIsRefused) {
  ::setenv("FORKSERVER_TEST_PRELOAD", "thread", 1);
  Process process("Nothing", "", With(StartMethod::kForkServer));
  EXPECT_THAT(process.Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("threads running")));
  ::setenv("FORKSERVER_TEST_PRELOAD", "ok", 1);
}

TEST(PreloadFailureTest, SpawnedWorkerExitsOneWhenItsPreloadFails) {
  ::setenv("FORKSERVER_TEST_PRELOAD", "fail", 1);
  Process process("Nothing", "", With(StartMethod::kSpawn));
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 1);
  ::setenv("FORKSERVER_TEST_PRELOAD", "ok", 1);
}

// Last: the application's own preload result is cached for its lifetime.
TEST(PreloadFailureTest, ForkMethodReportsThePreloadFailure) {
  ::setenv("FORKSERVER_TEST_PRELOAD", "fail", 1);
  Process process("Nothing", "", With(StartMethod::kFork));
  EXPECT_THAT(process.Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("preload 'Configurable' failed")));
}

}  // namespace
}  // namespace forkserver
