// Every child is reaped, and every exit status reported is the truth.

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <vector>

#include "tests/support/test_util.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

// arg "c<N>": exit N; "s<N>": die by signal N.
FORKSERVER_ENTRY(EndAs, absl::string_view arg) {
  int value = 0;
  if (!absl::SimpleAtoi(arg.substr(1), &value)) return 99;
  if (arg[0] == 's') ::raise(value);
  return value;
}

class ZombieTest : public ::testing::TestWithParam<StartMethod> {};

TEST_P(ZombieTest, ManyWorkersNoZombiesTruthfulStatus) {
  const int kWorkers = GetParam() == StartMethod::kSpawn ? 60 : 300;
  const std::vector<int> signals = testing::FatalSignalsForTests();
  std::vector<Process> processes;
  std::vector<int> expected;
  ProcessOptions options;
  options.start_method = GetParam();
  for (int i = 0; i < kWorkers; ++i) {
    const bool by_signal = i % 3 == 0;
    const int sig = signals[i % signals.size()];
    const std::string arg =
        by_signal ? absl::StrCat("s", sig) : absl::StrCat("c", i % 256);
    expected.push_back(by_signal ? -sig : i % 256);
    processes.emplace_back("EndAs", arg, options);
    ASSERT_OK(processes.back().Start());
  }
  for (int i = 0; i < kWorkers; ++i) {
    ASSERT_OK(processes[i].Join());
    EXPECT_EQ(processes[i].exitcode(), expected[i]) << "worker " << i;
  }
  // Reaped by whoever is the parent: the server, or us.
  pid_t parent = ::getpid();
  if (GetParam() == StartMethod::kForkServer) {
    absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
    ASSERT_OK(info.status());
    parent = info->pid;
    EXPECT_EQ(info->live_children, 0);
  }
  EXPECT_TRUE(testing::ZombieChildrenOf(parent).empty());
}

INSTANTIATE_TEST_SUITE_P(AllStartMethods, ZombieTest,
                         ::testing::ValuesIn(testing::TestedStartMethods()),
                         testing::MethodTestName);

}  // namespace
}  // namespace forkserver
