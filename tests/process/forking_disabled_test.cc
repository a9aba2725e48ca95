// MULTIPROCESSING_FORKING_DISABLE=1 (set by the BUILD rule for this whole
// binary): "fork" is never used, "spawn" is the default, and the policy
// reaches spawned workers through their environment.

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Exit code encodes what the worker saw: 0 only if all three hold.
FORKSERVER_ENTRY(CheckPolicyInside, absl::string_view) {
  const char* value = std::getenv("MULTIPROCESSING_FORKING_DISABLE");
  if (value == nullptr || std::string(value) != "1") return 1;
  if (GetStartMethod() != StartMethod::kSpawn) return 2;
  if (CheckStartMethodAllowed(StartMethod::kFork).ok()) return 3;
  return 0;
}

TEST(ForkingDisabledTest, DefaultIsSpawnAndForkIsRefused) {
  ASSERT_TRUE(ForkingDisabled());
  EXPECT_EQ(GetStartMethod(), StartMethod::kSpawn);
  EXPECT_THAT(AllowedStartMethods(),
              ElementsAre(StartMethod::kSpawn, StartMethod::kForkServer));
  ProcessOptions fork;
  fork.start_method = StartMethod::kFork;
  EXPECT_THAT(Process("CheckPolicyInside", "", fork).Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("MULTIPROCESSING_FORKING_DISABLE")));
}

TEST(ForkingDisabledTest, PolicyHoldsAfterExecv) {
  Process process("CheckPolicyInside", "");  // Default method: spawn.
  EXPECT_EQ(process.start_method(), StartMethod::kSpawn);
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 0);
}

TEST(ForkingDisabledTest, ForkServerMayStillBeChosen) {
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  Process process("CheckPolicyInside", "", options);
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 0);
}

// In a fresh (spawned) process, so the test can be repeated: the choice
// is once per process.
FORKSERVER_ENTRY(RefusedSetKeepsTheOneSet, absl::string_view) {
  if (SetStartMethod(StartMethod::kFork).code() !=
      absl::StatusCode::kFailedPrecondition) {
    return 1;
  }
  if (!SetStartMethod(StartMethod::kForkServer).ok()) return 2;
  return GetStartMethod() == StartMethod::kForkServer ? 0 : 3;
}

TEST(ForkingDisabledTest, RefusedSetDoesNotUseUpTheOneSet) {
  Process process("RefusedSetKeepsTheOneSet", "");  // Default: spawn.
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 0);
}

TEST(ForkingDisabledTest, ZeroOrEmptyMeansNotSet) {
  ::setenv("MULTIPROCESSING_FORKING_DISABLE", "0", 1);
  EXPECT_FALSE(ForkingDisabled());
  ::setenv("MULTIPROCESSING_FORKING_DISABLE", "", 1);
  EXPECT_FALSE(ForkingDisabled());
  ::setenv("MULTIPROCESSING_FORKING_DISABLE", "1", 1);
  EXPECT_TRUE(ForkingDisabled());
}

}  // namespace
}  // namespace forkserver
