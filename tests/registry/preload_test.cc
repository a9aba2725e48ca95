// Preloads run exactly once per process that forks workers: once in the
// fork server however many workers it forks, once in the application for
// "fork", and in every "spawn" worker.

#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
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
using ::forkserver::testing::ReadUntilEof;

int preload_runs = 0;
pid_t preload_pid = 0;
std::vector<int>* table = nullptr;
std::string preload_saw_args;

FORKSERVER_PRELOAD(BuildTable) {
  ++preload_runs;
  preload_pid = ::getpid();
  table = new std::vector<int>(1 << 16);
  for (size_t i = 0; i < table->size(); ++i) (*table)[i] = static_cast<int>(i * i);
  preload_saw_args = absl::StrJoin(MainArgs(), " ");
  return absl::OkStatus();
}

// Reports "<runs> <preload pid> <own pid> <table ok> <args seen by preload>".
FORKSERVER_ENTRY(ReportPreload, absl::string_view) {
  const bool table_ok = table != nullptr && (*table)[300] == 90000;
  std::string report = absl::StrCat(preload_runs, " ", preload_pid, " ",
                                    ::getpid(), " ", table_ok ? 1 : 0, " ",
                                    preload_saw_args);
  return testing::WriteAll(3, report) ? 0 : 1;
}

struct Report {
  int runs;
  pid_t preload_pid;
  pid_t pid;
  bool table_ok;
  std::string args;
};

std::vector<Report> StartReporters(StartMethod method, int count) {
  std::vector<Report> reports;
  std::vector<std::pair<Process, UniqueFd>> workers;
  for (int i = 0; i < count; ++i) {
    auto [read_end, write_end] = MakePipe();
    ProcessOptions options;
    options.start_method = method;
    options.fds = {{write_end.get(), 3}};
    workers.emplace_back(Process("ReportPreload", "", options),
                         std::move(read_end));
    EXPECT_OK(workers.back().first.Start());
  }
  for (auto& [process, read_end] : workers) {
    std::vector<std::string> fields =
        absl::StrSplit(ReadUntilEof(read_end.get()), absl::MaxSplits(' ', 4));
    EXPECT_OK(process.Join());
    if (fields.size() != 5) {
      ADD_FAILURE() << "bad report";
      continue;
    }
    Report report;
    EXPECT_TRUE(absl::SimpleAtoi(fields[0], &report.runs));
    EXPECT_TRUE(absl::SimpleAtoi(fields[1], &report.preload_pid));
    EXPECT_TRUE(absl::SimpleAtoi(fields[2], &report.pid));
    report.table_ok = fields[3] == "1";
    report.args = fields[4];
    reports.push_back(report);
  }
  return reports;
}

TEST(PreloadTest, ForkServerPreloadsOnceForAllWorkers) {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  std::vector<Report> reports = StartReporters(StartMethod::kForkServer, 40);
  ASSERT_EQ(reports.size(), 40u);
  for (const Report& report : reports) {
    EXPECT_EQ(report.runs, 1);
    EXPECT_EQ(report.preload_pid, info->pid);  // It ran in the server...
    EXPECT_NE(report.pid, info->pid);          // ...not in the worker.
    EXPECT_TRUE(report.table_ok);
    // The server's preload saw the application's arguments.
    EXPECT_EQ(report.args, absl::StrJoin(MainArgs(), " "));
  }
  // Same server throughout: one preload for all forty.
  absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
  ASSERT_OK(after.status());
  EXPECT_EQ(after->pid, info->pid);
  EXPECT_GT(after->preload_time, absl::ZeroDuration());
}

TEST(PreloadTest, ForkMethodPreloadsOnceInTheApplication) {
  std::vector<Report> reports = StartReporters(StartMethod::kFork, 10);
  ASSERT_EQ(reports.size(), 10u);
  for (const Report& report : reports) {
    EXPECT_EQ(report.runs, 1);
    EXPECT_EQ(report.preload_pid, ::getpid());
    EXPECT_TRUE(report.table_ok);
  }
  EXPECT_EQ(preload_runs, 1);
}

TEST(PreloadTest, SpawnedWorkersPreloadForThemselves) {
  std::vector<Report> reports = StartReporters(StartMethod::kSpawn, 5);
  ASSERT_EQ(reports.size(), 5u);
  for (const Report& report : reports) {
    EXPECT_EQ(report.runs, 1);
    EXPECT_EQ(report.preload_pid, report.pid);
    EXPECT_TRUE(report.table_ok);
  }
}

}  // namespace
}  // namespace forkserver
