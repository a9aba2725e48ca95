// What a worker sees of its environment, per start method (billiard's
// execv-mode variables), and the application's arguments in every role.

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::MakePipe;
using ::testing::Contains;
using ::testing::Not;
using ::forkserver::testing::ReadUntilEof;

std::string Variable(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? "<unset>" : value;
}

FORKSERVER_ENTRY(ReportEnvironment, absl::string_view) {
  std::string report = absl::StrCat(
      Variable("FORKED_BY_MULTIPROCESSING"), "\n", Variable("MP_MAIN_FILE"),
      "\n", Variable("MULTIPROCESSING_FORKING_DISABLE"), "\n",
      absl::StrJoin(MainArgs(), " "), "\n", MainExecutablePath());
  return testing::WriteAll(3, report) ? 0 : 1;
}

FORKSERVER_ENTRY(ReportBindNow, absl::string_view) {
  return testing::WriteAll(3, Variable("LD_BIND_NOW")) ? 0 : 1;
}

std::string BindNowOfAWorker() {
  auto [read_end, write_end] = MakePipe();
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  options.fds = {{write_end.get(), 3}};
  Process process("ReportBindNow", "", options);
  EXPECT_OK(process.Start());
  write_end.reset();
  std::string value = ReadUntilEof(read_end.get());
  EXPECT_OK(process.Join());
  return value;
}

std::vector<std::string> ExecEnvironmentOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/environ"));
  std::string block((std::istreambuf_iterator<char>(in)),
                    std::istreambuf_iterator<char>());
  return absl::StrSplit(block, '\0', absl::SkipEmpty());
}

std::vector<std::string> RunReport(StartMethod method) {
  auto [read_end, write_end] = MakePipe();
  ProcessOptions options;
  options.start_method = method;
  options.fds = {{write_end.get(), 3}};
  Process process("ReportEnvironment", "", options);
  EXPECT_OK(process.Start());
  write_end.reset();
  std::string report = ReadUntilEof(read_end.get());
  EXPECT_OK(process.Join());
  EXPECT_EQ(process.exitcode(), 0);
  return absl::StrSplit(report, '\n');
}

TEST(EnvironmentTest, SpawnedWorkerSeesExecVariables) {
  std::vector<std::string> report = RunReport(StartMethod::kSpawn);
  ASSERT_EQ(report.size(), 5u);
  EXPECT_EQ(report[0], "1");
  EXPECT_EQ(report[1], MainExecutablePath());
  EXPECT_EQ(report[1].front(), '/');
  EXPECT_EQ(report[2], "<unset>");
  // The application's own arguments, not the library's flags.
  EXPECT_EQ(report[3], absl::StrJoin(MainArgs(), " "));
  EXPECT_EQ(report[4], MainExecutablePath());
}

TEST(EnvironmentTest, ForkedWorkersAreNotMarkedAsExecd) {
  for (StartMethod method : {StartMethod::kFork, StartMethod::kForkServer}) {
    SCOPED_TRACE(StartMethodName(method));
    std::vector<std::string> report = RunReport(method);
    ASSERT_EQ(report.size(), 5u);
    EXPECT_EQ(report[0], "<unset>");
    EXPECT_EQ(report[1], "<unset>");
    EXPECT_EQ(report[3], absl::StrJoin(MainArgs(), " "));
  }
}

TEST(EnvironmentTest, InheritedValuesAreReplacedNotDuplicated) {
  ::setenv("FORKED_BY_MULTIPROCESSING", "0", 1);
  ::setenv("MP_MAIN_FILE", "/stale/path", 1);
  std::vector<std::string> report = RunReport(StartMethod::kSpawn);
  ::unsetenv("FORKED_BY_MULTIPROCESSING");
  ::unsetenv("MP_MAIN_FILE");
  ASSERT_EQ(report.size(), 5u);
  EXPECT_EQ(report[0], "1");
  EXPECT_EQ(report[1], MainExecutablePath());
}

// Sets ForkServerOptions::bind_symbols_at_launch for its lifetime (the
// next launch), and stops the server on both ends.
class BindNowOption {
 public:
  explicit BindNowOption(bool on) : saved_(GetForkServerOptions()) {
    (void)StopForkServer();
    ForkServerOptions options = saved_;
    options.bind_symbols_at_launch = on;
    SetForkServerOptions(options);
  }
  ~BindNowOption() {
    (void)StopForkServer();
    SetForkServerOptions(saved_);
  }

 private:
  const ForkServerOptions saved_;
};

// By default the server is exec'd with the application's environment as it
// is: no LD_BIND_NOW of ours (it would change dlopen(RTLD_LAZY) for the
// server and its workers).
TEST(EnvironmentTest, ByDefaultTheServerIsNotBoundNow) {
  if (std::getenv("LD_BIND_NOW") != nullptr) {
    GTEST_SKIP() << "LD_BIND_NOW is set in the test's environment";
  }
  BindNowOption off(false);
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  for (const std::string& entry : ExecEnvironmentOf(info->pid)) {
    EXPECT_FALSE(absl::StartsWith(entry, "LD_BIND_NOW=")) << entry;
  }
  EXPECT_EQ(BindNowOfAWorker(), "<unset>");
}

// bind_symbols_at_launch: the server is exec'd with LD_BIND_NOW=1 and
// removes it before its preloads, so workers' getenv sees the
// application's value; an application that sets LD_BIND_NOW itself keeps
// its value everywhere.
TEST(EnvironmentTest, BindSymbolsAtLaunchWorkersSeeTheApplicationsValue) {
  if (std::getenv("LD_BIND_NOW") != nullptr) {
    GTEST_SKIP() << "LD_BIND_NOW is set in the test's environment";
  }
  BindNowOption on(true);
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  EXPECT_THAT(ExecEnvironmentOf(info->pid), Contains("LD_BIND_NOW=1"));
  EXPECT_EQ(BindNowOfAWorker(), "<unset>");

  ASSERT_OK(StopForkServer());
  ::setenv("LD_BIND_NOW", "yes", 1);
  info = GetForkServerInfo();
  const std::string seen = BindNowOfAWorker();
  ::unsetenv("LD_BIND_NOW");
  ASSERT_OK(info.status());
  EXPECT_THAT(ExecEnvironmentOf(info->pid), Contains("LD_BIND_NOW=yes"));
  EXPECT_THAT(ExecEnvironmentOf(info->pid), Not(Contains("LD_BIND_NOW=1")));
  EXPECT_EQ(seen, "yes");
}

}  // namespace
}  // namespace forkserver
