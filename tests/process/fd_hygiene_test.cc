// Descriptor hygiene: a worker holds exactly the descriptors it was given
// (whatever the parent had open, with or without O_CLOEXEC, and with gaps
// in the requested numbers), and the server's own table does not drift.

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;

// Lists its open descriptors (but the directory's own) on fd 3, and
// whether each kept one lost O_CLOEXEC as it should.
FORKSERVER_ENTRY(ListFds, absl::string_view) {
  std::vector<std::string> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 1;
  const int own = ::dirfd(dir);
  while (dirent* entry = ::readdir(dir)) {
    int fd;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == own) continue;
    const bool cloexec = ::fcntl(fd, F_GETFD) & FD_CLOEXEC;
    fds.push_back(absl::StrCat(fd, cloexec ? "c" : ""));
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end(), [](const std::string& a,
                                       const std::string& b) {
    return std::stoi(a) < std::stoi(b);
  });
  return testing::WriteAll(3, absl::StrJoin(fds, ",")) ? 0 : 1;
}

FORKSERVER_ENTRY(Noop, absl::string_view) { return 0; }

class FdHygieneTest : public ::testing::TestWithParam<StartMethod> {};

TEST_P(FdHygieneTest, WorkerHoldsOnlyWhatItWasGiven) {
  // Clutter in the parent: leaked (no O_CLOEXEC) and proper descriptors,
  // numbers well above and between the ones we pass.
  std::vector<UniqueFd> clutter;
  for (int i = 0; i < 40; ++i) {
    int fd = ::open("/dev/null", O_RDONLY | (i % 2 ? O_CLOEXEC : 0));
    ASSERT_GE(fd, 0);
    clutter.emplace_back(fd);
  }
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  for (int round = 0; round < 25; ++round) {
    auto [read_end, write_end] = MakePipe();
    ProcessOptions options;
    options.start_method = GetParam();
    // A gap (4, 5, 6) and a high number between them.
    options.fds = {{write_end.get(), 3}, {devnull.get(), 7}, {devnull.get(), 90}};
    Process process("ListFds", "", options);
    ASSERT_OK(process.Start());
    write_end.reset();
    EXPECT_EQ(ReadUntilEof(read_end.get()), "0,1,2,3,7,90");
    ASSERT_OK(process.Join());
    EXPECT_EQ(process.exitcode(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(AllStartMethods, FdHygieneTest,
                         ::testing::ValuesIn(testing::TestedStartMethods()),
                         testing::MethodTestName);

// The server refills its warm pool when idle; once full, its descriptor
// count is at its fixed point (two per warm child).
absl::StatusOr<ForkServerInfo> InfoWithWarmPoolFull() {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  testing::Eventually([&] {
    info = GetForkServerInfo();
    return !info.ok() || info->warm_ready == info->warm_target;
  });
  return info;
}

TEST(ServerFdTest, ServerTableDoesNotDriftOverManySpawns) {
  absl::StatusOr<ForkServerInfo> before = InfoWithWarmPoolFull();
  ASSERT_OK(before.status());
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  options.fds = {{devnull.get(), 3}};
  for (int i = 0; i < 1000; ++i) {
    Process process("Noop", "", options);
    ASSERT_OK(process.Start());
    ASSERT_OK(process.Join());
  }
  absl::StatusOr<ForkServerInfo> after = InfoWithWarmPoolFull();
  ASSERT_OK(after.status());
  EXPECT_EQ(after->pid, before->pid);
  EXPECT_EQ(after->open_fds, before->open_fds);
  EXPECT_EQ(after->live_children, 0);
  EXPECT_EQ(after->spawned_total - before->spawned_total, 1000);
}

TEST(ClientFdTest, ClientTableDoesNotDriftOnSuccessOrFailure) {
  ASSERT_OK(GetForkServerInfo().status());  // The server's own fds exist.
  const std::vector<int> before = testing::OpenFds(::getpid());
  for (StartMethod method : testing::TestedStartMethods()) {
    ProcessOptions options;
    options.start_method = method;
    for (int i = 0; i < 20; ++i) {
      Process ok("Noop", "", options);
      ASSERT_OK(ok.Start());
      ASSERT_OK(ok.Join());
      Process unknown("NoSuchEntry", "", options);
      EXPECT_FALSE(unknown.Start().ok());
    }
  }
  EXPECT_EQ(testing::OpenFds(::getpid()), before);
}

// Sequential starts reuse one kept connection: the server accepts none.
TEST(ClientConnectionTest, SequentialStartsReuseOneConnection) {
  CloseIdleConnections();
  ASSERT_OK(GetForkServerInfo().status());  // Leaves one connection kept.
  absl::StatusOr<ForkServerInfo> before = GetForkServerInfo();
  ASSERT_OK(before.status());
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  for (int i = 0; i < 20; ++i) {
    Process process("Noop", "", options);
    ASSERT_OK(process.Start());
    ASSERT_OK(process.Join());
  }
  absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
  ASSERT_OK(after.status());
  EXPECT_EQ(after->pid, before->pid);
  EXPECT_EQ(after->accepted_total, before->accepted_total);
  EXPECT_EQ(internal::IdleConnectionCount(), 1);
}

// Concurrent workers each need a connection until their exit notice; once
// joined, at most idle_connections of them stay, and CloseIdleConnections
// gives the table back.
TEST(ClientConnectionTest, KeptConnectionsAreBoundedAndClosable) {
  ASSERT_OK(GetForkServerInfo().status());
  CloseIdleConnections();
  const std::vector<int> before = testing::OpenFds(::getpid());
  const int keep = GetForkServerOptions().idle_connections;
  ASSERT_GT(keep, 0);
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  std::vector<Process> processes;
  for (int i = 0; i < keep + 3; ++i) {
    processes.emplace_back("Noop", "", options);
    ASSERT_OK(processes.back().Start());
  }
  for (Process& process : processes) ASSERT_OK(process.Join());
  processes.clear();
  EXPECT_EQ(internal::IdleConnectionCount(), keep);
  EXPECT_EQ(testing::OpenFds(::getpid()).size(), before.size() + keep);
  CloseIdleConnections();
  EXPECT_EQ(internal::IdleConnectionCount(), 0);
  EXPECT_EQ(testing::OpenFds(::getpid()), before);
}

// idle_connections = 0: a connection per request, nothing stays open.
TEST(ClientConnectionTest, ZeroIdleConnectionsKeepsNothingOpen) {
  const ForkServerOptions saved = GetForkServerOptions();
  ForkServerOptions none = saved;
  none.idle_connections = 0;
  SetForkServerOptions(none);
  ASSERT_OK(GetForkServerInfo().status());
  CloseIdleConnections();
  const std::vector<int> before = testing::OpenFds(::getpid());
  absl::StatusOr<ForkServerInfo> first = GetForkServerInfo();
  ASSERT_OK(first.status());
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  constexpr int kStarts = 10;
  for (int i = 0; i < kStarts; ++i) {
    Process process("Noop", "", options);
    ASSERT_OK(process.Start());
    ASSERT_OK(process.Join());
  }
  EXPECT_EQ(testing::OpenFds(::getpid()), before);
  EXPECT_EQ(internal::IdleConnectionCount(), 0);
  absl::StatusOr<ForkServerInfo> last = GetForkServerInfo();
  ASSERT_OK(last.status());
  // Each start, and the second status request, was a connection of its own.
  EXPECT_EQ(last->accepted_total - first->accepted_total, kStarts + 1);
  SetForkServerOptions(saved);
}

}  // namespace
}  // namespace forkserver
