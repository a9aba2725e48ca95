// Descriptor hygiene: a worker holds exactly the descriptors it was given
// (whatever the parent had open, with or without O_CLOEXEC, and with gaps
// in the requested numbers), and the server's own table does not drift.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
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

// Restores the fork server options when the test ends, whatever it asserted.
class RestoreOptions {
 public:
  RestoreOptions() : saved_(GetForkServerOptions()) {}
  ~RestoreOptions() { SetForkServerOptions(saved_); }
  const ForkServerOptions& saved() const { return saved_; }

 private:
  const ForkServerOptions saved_;
};

// Starts `count` no-op workers together, then joins them all: each holds
// a connection to the server until its exit notice.
absl::Status RunConcurrently(int count, const ProcessOptions& options) {
  std::vector<Process> processes;
  for (int i = 0; i < count; ++i) {
    processes.emplace_back("Noop", "", options);
    if (absl::Status started = processes.back().Start(); !started.ok()) return started;
  }
  for (Process& process : processes) {
    if (absl::Status joined = process.Join(); !joined.ok()) return joined;
  }
  return absl::OkStatus();
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
  ASSERT_OK(RunConcurrently(keep + 3, options));
  EXPECT_EQ(internal::IdleConnectionCount(), keep);
  EXPECT_EQ(testing::OpenFds(::getpid()).size(), before.size() + keep);
  CloseIdleConnections();
  EXPECT_EQ(internal::IdleConnectionCount(), 0);
  EXPECT_EQ(testing::OpenFds(::getpid()), before);
}

// A child started with the "fork" method inherits the parent's cache of
// kept connections by number, after its setup closed those descriptors:
// when it reaches for a server of its own, the library must forget them,
// not close whatever the child has opened under those numbers since.
FORKSERVER_ENTRY(FillTableThenUseServer, absl::string_view) {
  struct stat null_info;
  if (::stat("/dev/null", &null_info) != 0) return 2;
  constexpr int kLast = 64;
  for (int fd = 4; fd <= kLast; ++fd) {
    const int opened = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (opened < 0 || (opened != fd && ::dup3(opened, fd, O_CLOEXEC) != fd)) return 3;
    if (opened != fd) ::close(opened);
  }
  if (!GetForkServerInfo().ok()) return 4;
  std::string closed;
  for (int fd = 4; fd <= kLast; ++fd) {
    struct stat info;
    if (::fstat(fd, &info) != 0 || info.st_rdev != null_info.st_rdev) {
      absl::StrAppend(&closed, closed.empty() ? "" : ",", fd);
    }
  }
  return testing::WriteAll(3, closed.empty() ? "intact" : "lost " + closed) ? 0 : 1;
}

TEST(ClientConnectionTest, AForkedChildNeverClosesItsParentsKeptNumbers) {
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  ASSERT_OK(RunConcurrently(3, options));
  ASSERT_GT(internal::IdleConnectionCount(), 0);
  auto [read_end, write_end] = MakePipe();
  ProcessOptions fork_options;
  fork_options.start_method = StartMethod::kFork;
  fork_options.fds = {{write_end.get(), 3}};
  Process child("FillTableThenUseServer", "", fork_options);
  ASSERT_OK(child.Start());
  write_end.reset();
  EXPECT_EQ(ReadUntilEof(read_end.get()), "intact");
  ASSERT_OK(child.Join());
  EXPECT_EQ(child.exitcode(), 0);
}

// Turning idle_connections down to 0 closes the ones kept before at the
// next request.
TEST(ClientConnectionTest, TurningKeptConnectionsOffClosesThem) {
  const RestoreOptions restore;
  const ForkServerOptions& saved = restore.saved();
  ASSERT_OK(GetForkServerInfo().status());
  CloseIdleConnections();
  const std::vector<int> before = testing::OpenFds(::getpid());
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  ASSERT_OK(RunConcurrently(3, options));
  EXPECT_GE(internal::IdleConnectionCount(), 3);
  ForkServerOptions none = saved;
  none.idle_connections = 0;
  SetForkServerOptions(none);
  absl::Status joined;
  {
    Process process("Noop", "", options);
    joined = process.Start();
    if (joined.ok()) joined = process.Join();
  }  // Its pidfd closed.
  const int kept = internal::IdleConnectionCount();
  const std::vector<int> after = testing::OpenFds(::getpid());
  ASSERT_OK(joined);
  EXPECT_EQ(kept, 0);
  EXPECT_EQ(after, before);
}

// idle_connections = 0: a connection per request, nothing stays open.
TEST(ClientConnectionTest, ZeroIdleConnectionsKeepsNothingOpen) {
  const RestoreOptions restore;
  const ForkServerOptions& saved = restore.saved();
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
  }

}  // namespace
}  // namespace forkserver
