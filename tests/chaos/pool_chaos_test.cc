// Chaos against the Pool: workers SIGKILLed while busy, over every start
// method, and Map chunks past the frame cap in both directions. Each case
// runs in a bounded copy of the test process (RunBoundedInChild), so one
// that hangs (a Join that never returns) fails instead of hanging the
// suite, and ends with the invariants: no zombies under the test or its
// fork server, the fork server serves, every job ended in time.

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/chaos/chaos_harness.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace chaos {
namespace {

absl::StatusOr<int> ChaosSleep(const int& ms, TaskContext&) {
  absl::SleepFor(absl::Milliseconds(ms));
  return static_cast<int>(::getpid());
}
FORKSERVER_REGISTER_TASK(ChaosSleep);

absl::StatusOr<int> ChaosLength(const std::string& bytes, TaskContext&) {
  return static_cast<int>(bytes.size());
}
FORKSERVER_REGISTER_TASK(ChaosLength);

absl::StatusOr<std::string> ChaosMakeBytes(const int& n, TaskContext&) {
  return std::string(static_cast<size_t>(n), 'r');
}
FORKSERVER_REGISTER_TASK(ChaosMakeBytes);

// What every pool case ends with, in the child.
void ExpectPoolInvariants(std::unique_ptr<Pool> pool) {
  pool->Close();
  EXPECT_OK(pool->Join()) << "Join after Close";
  pool.reset();
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status()) << "the fork server does not serve";
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  for (pid_t parent : {::getpid(), info->pid}) {
    std::vector<pid_t> zombies = testing::ZombieChildrenOf(parent);
    while (!zombies.empty() && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
      zombies = testing::ZombieChildrenOf(parent);
    }
    EXPECT_TRUE(zombies.empty()) << "zombies under " << parent << ": "
                                 << absl::StrJoin(zombies, " ");
  }
  // The fork server's own descriptors: a status connection only, once the
  // connections this client kept for reuse are closed (the server sees
  // their EOF on its next turn).
  CloseIdleConnections();
  absl::StatusOr<ForkServerInfo> again;
  testing::Eventually([&] {
    again = GetForkServerInfo();
    CloseIdleConnections();  // The status request's own, kept again.
    return !again.ok() || again->open_connections == 1;
  });
  ASSERT_OK(again.status());
  EXPECT_EQ(again->live_children, 0);
  EXPECT_EQ(again->open_connections, 1);  // This status request.
}

class PoolKillTest : public ::testing::TestWithParam<StartMethod> {};

// Matrix row 5: busy workers SIGKILLed in a loop: 0 lost tasks (each ends
// with its value or a WorkerLost error), 0 hung results.
TEST_P(PoolKillTest, KillBusyWorkersInALoop) {
  const StartMethod method = GetParam();
  RunBoundedInChild(absl::Seconds(90), [method] {
    PoolOptions options;
    options.processes = 4;
    options.start_method = method;
    options.lost_worker_timeout = absl::Milliseconds(50);
    options.max_restarts = 1000000;  // The kills are ours, not a storm.
    options.log = [](absl::string_view) {};
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
    ASSERT_OK(pool.status());
    std::mt19937 random(1234 + static_cast<int>(method));
    std::vector<AsyncResult> results;
    constexpr int kRounds = 100;
    int kills = 0;
    std::set<pid_t> killed_pids;  // A dead worker's job waits out lost_worker_timeout.
    for (int round = 0; round < kRounds; ++round) {
      for (int i = 0; i < 3; ++i) {
        absl::StatusOr<AsyncResult> result = (*pool)->ApplyAsync(
            "ChaosSleep", static_cast<int>(20 + random() % 60));
        ASSERT_OK(result.status());
        results.push_back(*result);
        GlobalFigures().pool_tasks++;
      }
      // A busy worker: one whose job was accepted and is not done.
      const absl::Time deadline = absl::Now() + absl::Seconds(5);
      bool killed = false;
      while (!killed && absl::Now() < deadline) {
        for (auto it = results.rbegin(); it != results.rend() && !killed; ++it) {
          if (!it->Accepted() || it->Ready()) continue;
          const std::vector<pid_t> pids = it->WorkerPids();
          if (pids.empty() || killed_pids.count(pids.back()) > 0) continue;
          UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pids.back(), 0)));
          if (!pidfd || it->Ready()) continue;
          ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
          killed_pids.insert(pids.back());
          killed = true;
        }
        if (!killed) absl::SleepFor(absl::Milliseconds(1));
      }
      ASSERT_TRUE(killed) << "round " << round << ": no busy worker to kill";
      ++kills;
      GlobalFigures().faults++;
    }
    // Every job ends, in time, with its value or WorkerLost.
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    int lost = 0, hung = 0, wrong = 0;
    for (const AsyncResult& result : results) {
      absl::StatusOr<int> value =
          result.GetAs<int>(std::max(absl::ZeroDuration(), deadline - absl::Now()));
      if (value.ok()) continue;
      if (GetPoolError(value.status()) == PoolError::kWorkerLost) {
        ++lost;
      } else if (absl::IsDeadlineExceeded(value.status())) {
        ++hung;
      } else {
        ++wrong;
        ADD_FAILURE() << "job " << result.id() << ": " << value.status();
      }
    }
    GlobalFigures().pool_lost += lost;
    EXPECT_EQ(hung, 0) << "results not ready within their deadline";
    EXPECT_EQ(wrong, 0);
    EXPECT_GE(lost, 1) << "no job was lost to " << kills << " kills?";
    std::printf("pool kill loop (%s): %zu jobs, %d kills, %d WorkerLost, 0 lost\n",
                StartMethodName(method).data(), results.size(), kills, lost);
    ExpectPoolInvariants(*std::move(pool));
  });
}

INSTANTIATE_TEST_SUITE_P(Methods, PoolKillTest,
                         ::testing::ValuesIn(testing::TestedStartMethods()),
                         testing::MethodTestName);

// Issue 7 item 1: a Map chunk whose arguments add up past the frame cap
// (300 × 1 MiB, chunksize 300, one worker) must end with values or a clear
// error, and Close/Join must return.
TEST(PoolFrameCapTest, MapChunkOfArgumentsPastTheFrameCap) {
  RunBoundedInChild(absl::Seconds(60), [] {
    PoolOptions options;
    options.processes = 1;
    options.log = [](absl::string_view) {};
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
    ASSERT_OK(pool.status());
    std::vector<std::string> args(300, std::string(1 << 20, 'a'));
    CallOptions call;
    call.chunksize = 300;
    GlobalFigures().pool_tasks += 300;
    GlobalFigures().bad_inputs++;
    absl::StatusOr<MapResult> map = (*pool)->MapAsync("ChaosLength", args, call);
    ASSERT_OK(map.status());
    args.clear();
    absl::StatusOr<std::vector<int>> lengths = map->GetAs<int>(absl::Seconds(30));
    EXPECT_THAT(lengths.status(),
                ::testing::Not(testing::StatusIs(absl::StatusCode::kDeadlineExceeded)))
        << "the job hung";
    if (lengths.ok()) {
      ASSERT_EQ(lengths->size(), 300u);
      for (int length : *lengths) EXPECT_EQ(length, 1 << 20);
    }
    ExpectPoolInvariants(*std::move(pool));
  });
}

// The same for results: 300 results of 1 MiB in one chunk.
TEST(PoolFrameCapTest, MapChunkOfResultsPastTheFrameCap) {
  RunBoundedInChild(absl::Seconds(60), [] {
    PoolOptions options;
    options.processes = 1;
    options.log = [](absl::string_view) {};
    absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
    ASSERT_OK(pool.status());
    std::vector<int> sizes(300, 1 << 20);
    CallOptions call;
    call.chunksize = 300;
    GlobalFigures().pool_tasks += 300;
    GlobalFigures().bad_inputs++;
    absl::StatusOr<MapResult> map = (*pool)->MapAsync("ChaosMakeBytes", sizes, call);
    ASSERT_OK(map.status());
    absl::StatusOr<std::vector<std::string>> values = map->Get(absl::Seconds(30));
    EXPECT_THAT(values.status(),
                ::testing::Not(testing::StatusIs(absl::StatusCode::kDeadlineExceeded)))
        << "the job hung";
    if (values.ok()) {
      ASSERT_EQ(values->size(), 300u);
      for (const std::string& value : *values) EXPECT_EQ(value.size(), 1u << 20);
    }
    ExpectPoolInvariants(*std::move(pool));
  });
}

}  // namespace
}  // namespace chaos
}  // namespace forkserver
