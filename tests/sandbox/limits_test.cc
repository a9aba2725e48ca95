// Limits: cgroup memory and pids (v1 on this host, v2 where delegated),
// wall time and CPU time, each with the kill reason the parent reports.
// cgroup tests skip, saying why, where no cgroup can be created.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <string>

#include "absl/strings/str_cat.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace forkserver {
namespace sandbox {
namespace testing {
namespace {

using ::testing::HasSubstr;

Policy WithLimits(const std::string& limits) {
  return MustParse(absl::StrCat(R"pb(
    namespaces { user { enabled: true } pid: true ipc: true }
    )pb", "limits { ", limits, " }"));
}

class CgroupLimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string reason = UserNamespaceUnavailableReason(); !reason.empty()) {
      GTEST_SKIP() << "user namespaces unavailable: " << reason;
    }
    Limits limits;
    limits.set_memory_bytes(1);
    limits.set_pids_max(1);
    auto manager = CgroupManager::Create(limits);
    if (!manager.ok()) GTEST_SKIP() << "no writable cgroups here: " << manager.status();
    manager_ = std::move(*manager);
  }
  std::unique_ptr<CgroupManager> manager_;
};

// Without the memory cgroup the probe would allocate its 256 MiB and exit 0.
TEST_F(CgroupLimitsTest, MemoryLimitIsOomKilledAndReported) {
  RunOutcome run = RunInSandbox(WithLimits("memory_bytes: 33554432"),
                                {ProbePath(), "alloc", "256"}, manager_.get());
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.result.term_signal, SIGKILL) << run.out;
  EXPECT_EQ(run.result.kill_reason, KillReason::kMemory);
  ASSERT_TRUE(run.result.memory_peak.has_value());
  EXPECT_GE(*run.result.memory_peak, 30u << 20);
  EXPECT_LE(*run.result.memory_peak, 33554432u);

  RunOutcome fits = RunInSandbox(WithLimits("memory_bytes: 268435456"),
                                 {ProbePath(), "alloc", "16"}, manager_.get());
  ASSERT_TRUE(fits.status.ok()) << fits.status;
  EXPECT_EQ(fits.out, "allocated=16\n");
  EXPECT_EQ(fits.result.kill_reason, KillReason::kNone);
}

// Without the pids cgroup all 20 forks succeed.
TEST_F(CgroupLimitsTest, PidsLimitMakesForkFail) {
  RunOutcome run = RunInSandbox(WithLimits("pids_max: 5"), {ProbePath(), "fork", "20"},
                                manager_.get());
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out, absl::StrCat("forked=4 errno=", EAGAIN, "\n"));
  EXPECT_TRUE(run.result.pids_limit_hit);
}

// The leaf goes with its child; the manager's own parent with the manager.
TEST_F(CgroupLimitsTest, CgroupsAreRemoved) {
  Limits limits;
  limits.set_pids_max(3);
  auto leaf = manager_->CreateLeaf(limits);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_TRUE((*leaf)->Remove().ok());
  RunOutcome run = RunInSandbox(WithLimits("pids_max: 3"), {"/bin/true"}, manager_.get());
  ASSERT_TRUE(run.status.ok()) << run.status;
  const std::string mine = absl::StrCat("forkserver-", getuid(), "-", getpid());
  RunOutcome find = RunInSandbox(MustParse(""), {"/bin/sh", "-c",
      absl::StrCat("find /sys/fs/cgroup -path '*", mine, "/*' -type d")});
  EXPECT_EQ(find.out, "");  // No leaf left behind.
}

// Found by an outside attack: a SIGKILLed server leaves its parent
// cgroups behind (its destructor never ran), and nothing removed them. The
// next manager of our uid removes those of dead pids, with their leaves;
// one whose pid lives (pid 1 here) stays.
TEST_F(CgroupLimitsTest, ParentsOfDeadServersAreReclaimedLiveOnesAreNot) {
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_GT(dead, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(dead, &status, 0), dead);
  for (const std::string& parent : manager_->parents()) {
    const std::string base = parent.substr(0, parent.rfind('/'));
    const std::string stale = absl::StrCat(base, "/forkserver-", getuid(), "-", dead);
    const std::string live = absl::StrCat(base, "/forkserver-", getuid(), "-1");
    ASSERT_EQ(::mkdir(stale.c_str(), 0755), 0) << stale << ": " << std::strerror(errno);
    ASSERT_EQ(::mkdir((stale + "/leaf-0").c_str(), 0755), 0) << std::strerror(errno);
    ASSERT_EQ(::mkdir(live.c_str(), 0755), 0) << live << ": " << std::strerror(errno);
    EXPECT_GE(CgroupManager::ReclaimStaleParents(base), 1);
    struct stat st;
    EXPECT_NE(::stat(stale.c_str(), &st), 0) << stale << " was left";
    EXPECT_EQ(::stat(live.c_str(), &st), 0) << live << " (a live pid's) was removed";
    ::rmdir(live.c_str());
    ::rmdir((stale + "/leaf-0").c_str());
    ::rmdir(stale.c_str());
  }
}

TEST(WallTimeTest, KillsAtTheDeadlineWithThatReason) {
  RunOutcome run = RunInSandbox(MustParse("limits { wall_time_ms: 200 }"), {"/bin/sleep", "60"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.result.term_signal, SIGKILL);
  EXPECT_EQ(run.result.kill_reason, KillReason::kWallTime);
}

TEST(CpuTimeTest, KillsAtTheCpuLimitWithThatReason) {
  RunOutcome run = RunInSandbox(MustParse("limits { cpu_time_ms: 1000 wall_time_ms: 60000 }"),
                                {ProbePath(), "spin"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.result.term_signal, SIGXCPU);
  EXPECT_EQ(run.result.kill_reason, KillReason::kCpuTime);
}

TEST(CgroupManagerTest, NoLimitsNeedNoCgroup) {
  EXPECT_FALSE(CgroupManager::Needed(Limits()));
  RunOutcome run = RunInSandbox(WithLimits("memory_bytes: 1000000"), {"/bin/true"}, nullptr);
  EXPECT_EQ(run.status.code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace testing
}  // namespace sandbox
}  // namespace forkserver
