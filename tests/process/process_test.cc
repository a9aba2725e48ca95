// Process over every start method: exit codes, signals, join timeouts,
// misuse, arguments and descriptors.

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;
using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

FORKSERVER_ENTRY(ExitWith, absl::string_view arg) {
  int code = 0;
  return absl::SimpleAtoi(arg, &code) ? code : 99;
}

FORKSERVER_ENTRY(RaiseSignal, absl::string_view arg) {
  int sig = 0;
  if (!absl::SimpleAtoi(arg, &sig)) return 99;
  ::raise(sig);
  return 98;  // Not reached for a fatal signal.
}

FORKSERVER_ENTRY(SleepForever, absl::string_view) {
  while (true) ::pause();
}

// Blocks until its fd 3 reaches EOF, then exits 0.
FORKSERVER_ENTRY(WaitForEof, absl::string_view) {
  char byte;
  while (::read(3, &byte, 1) > 0) {
  }
  return 0;
}

FORKSERVER_ENTRY(Throw, absl::string_view) {
  throw std::runtime_error("task failed on purpose");
}

// Writes its argument's size and a checksum to fd 3.
FORKSERVER_ENTRY(EchoDigest, absl::string_view arg) {
  uint64_t sum = 1469598103934665603ull;
  for (unsigned char c : arg) sum = (sum ^ c) * 1099511628211ull;
  std::string report = absl::StrCat(arg.size(), ":", sum);
  return testing::WriteAll(3, report) ? 0 : 1;
}

std::string Digest(absl::string_view arg) {
  uint64_t sum = 1469598103934665603ull;
  for (unsigned char c : arg) sum = (sum ^ c) * 1099511628211ull;
  return absl::StrCat(arg.size(), ":", sum);
}

class ProcessTest : public ::testing::TestWithParam<StartMethod> {
 protected:
  ProcessOptions Options() {
    ProcessOptions options;
    options.start_method = GetParam();
    return options;
  }
};

TEST_P(ProcessTest, ExitCodeZero) {
  Process process("ExitWith", "0", Options());
  ASSERT_OK(process.Start());
  EXPECT_GT(process.pid(), 0);
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 0);
  EXPECT_FALSE(process.IsAlive());
}

TEST_P(ProcessTest, ExitCodeN) {
  Process process("ExitWith", "7", Options());
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 7);
}

TEST_P(ProcessTest, SignalDeathIsNegative) {
  for (int sig : testing::FatalSignalsForTests()) {
    Process process("RaiseSignal", absl::StrCat(sig), Options());
    ASSERT_OK(process.Start());
    ASSERT_OK(process.Join());
    EXPECT_EQ(process.exitcode(), -sig) << "signal " << sig;
  }
}

TEST_P(ProcessTest, UncaughtExceptionExitsOne) {
  Process process("Throw", "", Options());
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 1);
}

TEST_P(ProcessTest, TerminateGivesSigterm) {
  Process process("SleepForever", "", Options());
  ASSERT_OK(process.Start());
  EXPECT_TRUE(process.IsAlive());
  ASSERT_OK(process.Terminate());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), -SIGTERM);
  EXPECT_FALSE(process.IsAlive());
  // Signalling an ended process is not an error (it races with its exit).
  EXPECT_OK(process.Terminate());
  EXPECT_OK(process.Kill());
}

TEST_P(ProcessTest, KillGivesSigkill) {
  Process process("SleepForever", "", Options());
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Kill());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), -SIGKILL);
}

TEST_P(ProcessTest, JoinTimesOutWhileRunning) {
  Process process("SleepForever", "", Options());
  ASSERT_OK(process.Start());
  EXPECT_THAT(process.Join(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("still running")));
  EXPECT_TRUE(process.IsAlive());
  EXPECT_EQ(process.exitcode(), std::nullopt);
  ASSERT_OK(process.Kill());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), -SIGKILL);
}

TEST_P(ProcessTest, SentinelBecomesReadableAtExit) {
  auto [read_end, write_end] = MakePipe();
  ProcessOptions options = Options();
  options.fds = {{read_end.get(), 3}};
  Process process("WaitForEof", "", options);
  ASSERT_OK(process.Start());
  read_end.reset();
  pollfd pfd{process.sentinel(), POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 0) << "sentinel readable while running";
  write_end.reset();  // The worker sees EOF and exits.
  EXPECT_EQ(::poll(&pfd, 1, 30'000), 1);
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 0);
}

TEST_P(ProcessTest, ArgumentsArriveIntact) {
  // Small (inline) and large (memfd for forkserver, > one packet) arguments.
  for (size_t size : {size_t{0}, size_t{100}, size_t{1} << 20}) {
    std::string arg(size, '\0');
    for (size_t i = 0; i < size; ++i) arg[i] = static_cast<char>(i * 31 + 7);
    auto [read_end, write_end] = MakePipe();
    ProcessOptions options = Options();
    options.fds = {{write_end.get(), 3}};
    Process process("EchoDigest", arg, options);
    ASSERT_OK(process.Start());
    write_end.reset();
    EXPECT_EQ(ReadUntilEof(read_end.get()), Digest(arg)) << "size " << size;
    ASSERT_OK(process.Join());
    EXPECT_EQ(process.exitcode(), 0);
  }
}

TEST_P(ProcessTest, DefaultNameCounts) {
  Process process("ExitWith", "0", Options());
  EXPECT_THAT(process.name(), MatchesRegex("Process-[0-9]+"));
  ProcessOptions named = Options();
  named.name = "cruncher";
  EXPECT_EQ(Process("ExitWith", "0", named).name(), "cruncher");
}

TEST_P(ProcessTest, UseBeforeStartIsAnError) {
  Process process("ExitWith", "0", Options());
  EXPECT_THAT(process.Join(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr("not been started")));
  EXPECT_THAT(process.Terminate(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(process.Kill(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(process.IsAlive());
  EXPECT_EQ(process.exitcode(), std::nullopt);
  EXPECT_EQ(process.pid(), 0);
  EXPECT_EQ(process.sentinel(), -1);
}

TEST_P(ProcessTest, StartingTwiceIsAnError) {
  Process process("ExitWith", "0", Options());
  ASSERT_OK(process.Start());
  EXPECT_THAT(process.Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("already been started")));
  ASSERT_OK(process.Join());
}

TEST_P(ProcessTest, UnknownEntryIsNotFound) {
  Process process("NoSuchEntry", "", Options());
  EXPECT_THAT(process.Start(), StatusIs(absl::StatusCode::kNotFound,
                                        HasSubstr("NoSuchEntry")));
  EXPECT_FALSE(process.IsAlive());
}

TEST_P(ProcessTest, BadDescriptorsAreRejected) {
  ProcessOptions closed = Options();
  closed.fds = {{1000, 3}};
  EXPECT_THAT(Process("ExitWith", "0", closed).Start(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("not open")));
  ProcessOptions twice = Options();
  twice.fds = {{0, 5}, {1, 5}};
  EXPECT_THAT(Process("ExitWith", "0", twice).Start(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("same child descriptor")));
}

TEST_P(ProcessTest, DaemonIsTerminatedWhenDestroyed) {
  int watch = -1;
  {
    ProcessOptions options = Options();
    options.daemon = true;
    Process process("SleepForever", "", options);
    ASSERT_OK(process.Start());
    EXPECT_TRUE(process.daemon());
    watch = ::dup(process.sentinel());
  }
  pollfd pfd{watch, POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 1) << "daemon still running after destruction";
  ::close(watch);
}

TEST_P(ProcessTest, DestroyingARunningProcessJoinsIt) {
  auto [read_end, write_end] = MakePipe();
  int watch = -1;
  {
    ProcessOptions options = Options();
    options.fds = {{read_end.get(), 3}};
    Process process("WaitForEof", "", options);
    ASSERT_OK(process.Start());
    watch = ::dup(process.sentinel());
    write_end.reset();  // Lets it finish; the destructor must wait for it.
  }
  pollfd pfd{watch, POLLIN, 0};
  EXPECT_EQ(::poll(&pfd, 1, 0), 1);
  ::close(watch);
}

TEST_P(ProcessTest, MovedProcessKeepsWorking) {
  Process original("ExitWith", "3", Options());
  ASSERT_OK(original.Start());
  Process moved = std::move(original);
  ASSERT_OK(moved.Join());
  EXPECT_EQ(moved.exitcode(), 3);
}

TEST_P(ProcessTest, ResourceUsageIsReported) {
  Process process("ExitWith", "0", Options());
  EXPECT_EQ(process.resource_usage(), std::nullopt);
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
  ASSERT_TRUE(process.resource_usage().has_value());
  EXPECT_GT(process.resource_usage()->max_rss_kib, 0);
}

INSTANTIATE_TEST_SUITE_P(AllStartMethods, ProcessTest,
                         ::testing::ValuesIn(testing::TestedStartMethods()),
                         testing::MethodTestName);

// 0 when, in a fresh process, a first SetStartMethod works and a second
// is refused (the choice is once per process: checked in a spawned worker
// so the test can be repeated).
FORKSERVER_ENTRY(SetStartMethodTwice, absl::string_view) {
  if (!SetStartMethod(StartMethod::kForkServer).ok()) return 1;
  absl::Status second = SetStartMethod(StartMethod::kSpawn);
  if (second.code() != absl::StatusCode::kFailedPrecondition ||
      second.message().find("already been set") == absl::string_view::npos) {
    return 2;
  }
  return GetStartMethod() == StartMethod::kForkServer ? 0 : 3;
}

TEST(StartMethodTest, SettingTwiceIsAnError) {
  ProcessOptions options;
  options.start_method = StartMethod::kSpawn;
  Process process("SetStartMethodTwice", "", options);
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 0);
}

TEST(StartMethodTest, ParsesNames) {
  EXPECT_EQ(*ParseStartMethod("fork"), StartMethod::kFork);
  EXPECT_EQ(*ParseStartMethod("spawn"), StartMethod::kSpawn);
  EXPECT_EQ(*ParseStartMethod("forkserver"), StartMethod::kForkServer);
  EXPECT_THAT(ParseStartMethod("vfork").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace forkserver
