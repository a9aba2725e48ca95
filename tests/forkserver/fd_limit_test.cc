// The fork server raises its own soft RLIMIT_NOFILE to the hard limit
// (forkserver/fd_budget.h), so that its connections fit. Its children must
// not inherit that: a worker or program gets back the soft limit the
// server was started with (a program that select()s, or sizes a table by
// its limit, breaks on a raised one). Cold and warm entry workers here;
// exec'd programs and sandboxed ones in tests/tools and tests/sandbox.

#include <fcntl.h>
#include <sys/resource.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::Eventually;
using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;

// A descriptor number above the soft limit the workers get back: given to
// each, it must be installed all the same (the limit is restored after).
constexpr int kHighFd = 400;

// Writes the soft limit it runs under to fd 3, and whether kHighFd is open.
FORKSERVER_ENTRY(ReportSoftFdLimit, absl::string_view) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1;
  const bool high = ::fcntl(kHighFd, F_GETFD) >= 0;
  return testing::WriteAll(3, absl::StrCat(limit.rlim_cur, high ? " high" : " no-high")) ? 0
                                                                                        : 1;
}

std::string SoftFdLimitOfAWorker() {
  auto [read_end, write_end] = MakePipe();
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  options.fds = {{write_end.get(), 3}, {devnull.get(), kHighFd}};
  Process process("ReportSoftFdLimit", "", options);
  if (absl::Status started = process.Start(); !started.ok()) {
    return started.ToString();
  }
  write_end.reset();
  std::string report = ReadUntilEof(read_end.get());
  if (!process.Join(absl::Seconds(30)).ok() || process.exitcode() != 0) {
    return "worker failed";
  }
  return report;
}

// Starts a server with `warm` warm workers from this process, which runs
// under a soft limit of `soft` (below the hard one), and waits for its
// warm pool to fill.
absl::StatusOr<ForkServerInfo> ServerStartedUnder(rlim_t soft, int warm) {
  if (absl::Status stopped = StopForkServer(); !stopped.ok()) return stopped;
  ForkServerOptions options = GetForkServerOptions();
  options.warm_workers = warm;
  SetForkServerOptions(options);
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = soft;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
    return absl::InternalError("setrlimit");
  }
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  Eventually([&] {
    info = GetForkServerInfo();
    return !info.ok() || info->warm_ready == info->warm_target;
  });
  return info;
}

class FdLimitTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved_), 0);
    if (saved_.rlim_max != RLIM_INFINITY && saved_.rlim_max <= kSoft) {
      GTEST_SKIP() << "hard RLIMIT_NOFILE " << saved_.rlim_max
                   << " leaves no room below it to start the server under";
    }
  }
  void TearDown() override {
    StopForkServer().IgnoreError();
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  static constexpr rlim_t kSoft = 321;
  rlimit saved_{};
};

TEST_P(FdLimitTest, WorkersGetTheSoftLimitTheServerWasStartedWith) {
  const int warm = GetParam();
  absl::StatusOr<ForkServerInfo> before = ServerStartedUnder(kSoft, warm);
  ASSERT_OK(before.status());
  // The server itself did raise its own limit (or these workers would
  // pass by inheriting it unchanged).
  EXPECT_NE(testing::SoftFdLimitOf(before->pid), absl::StrCat(kSoft));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(SoftFdLimitOfAWorker(), absl::StrCat(kSoft, " high")) << "worker " << i;
  }
  absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
  ASSERT_OK(after.status());
  if (warm > 0) {
    EXPECT_GT(after->warm_hits, before->warm_hits) << "no warm worker served";
  }
}

INSTANTIATE_TEST_SUITE_P(ColdAndWarm, FdLimitTest, ::testing::Values(0, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return info.param == 0 ? std::string("cold")
                                                  : std::string("warm");
                         });

}  // namespace
}  // namespace forkserver
