// The pool under failure: time limits, dying workers, recycling, restart
// storms, terminate_job, grow/shrink/restart, shutdown, and a kill -9 loop
// (billiard's acceptance list, §6.1 of reference/billiard.md), over the
// fork and forkserver start methods (and spawn where it differs).

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/pool/pool_fixture.h"
#include "tests/pool/pool_tasks.h"
#include "tests/support/test_util.h"

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FORKSERVER_TEST_UNDER_TSAN 1
#endif
#endif

namespace forkserver {
namespace {

using ::forkserver::testing::Eventually;
using ::forkserver::testing::Exited;
using ::forkserver::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Where the RecordExit hook writes. Set during static initialisation, so
// the fork server (launched later) and its workers inherit it: workers see
// the server's environment, not the application's current one. Not
// overwritten in the server or spawned workers, which run this too.
const bool exit_log_set = [] {
  ::setenv("FORKSERVER_TEST_EXIT_LOG",
           absl::StrCat("/tmp/forkserver-exits-", ::getpid()).c_str(),
           /*overwrite=*/0);
  return true;
}();

class PoolReliabilityTest : public testing::PoolFixture {
 protected:
  // This process's thread count once the threads of earlier tests' pools
  // have ended (a detached helper may still be exiting when its test is
  // done): the baseline for "no thread is left".
  static int SettledThreadCount() {
#if defined(__SANITIZE_THREAD__) || defined(FORKSERVER_TEST_UNDER_TSAN)
    // TSan's runtime adds a background thread with the first thread made.
    std::thread([] {}).join();
    constexpr int kQuiet = 2;
#else
    constexpr int kQuiet = 1;
#endif
    EXPECT_TRUE(Eventually([] { return testing::ThreadCount() <= kQuiet; }))
        << "an earlier test's thread is still running";
    return testing::ThreadCount();
  }

  // Starts a long task and waits until a worker has accepted it.
  AsyncResult StartSleeper(Pool& pool, CallOptions options = {}) {
    absl::StatusOr<AsyncResult> result =
        pool.ApplyAsync("SleepMillis", 60'000, std::move(options));
    EXPECT_OK(result.status());
    EXPECT_TRUE(Eventually([&] { return result->Accepted(); }));
    return *result;
  }

};

TEST_P(PoolReliabilityTest, SoftLimitReachesTheTaskWhichMayRecover) {
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  std::atomic<int> soft_callbacks{0};
  CallOptions options;
  options.soft_timeout = absl::Milliseconds(100);
  options.timeout_callback = [&](bool soft, absl::Duration limit) {
    EXPECT_TRUE(soft);
    EXPECT_EQ(limit, absl::Milliseconds(100));
    ++soft_callbacks;
  };
  // Without the limit it would sleep 30 s and say "finished".
  EXPECT_EQ(*pool->Apply<std::string>("SleepUntilSoftLimit", 30'000, options),
            "recovered");
  // A task that ignores its soft limit carries on to the end.
  EXPECT_EQ(*pool->Apply<int>("IgnoreSoftLimit", 300, options), 300);
  pool->Close();
  ASSERT_OK(pool->Join());
  EXPECT_EQ(soft_callbacks.load(), 2);
}

TEST_P(PoolReliabilityTest, HardLimitFailsTheJobAndReplacesTheWorker) {
  PoolOptions pool_options = Options(1);
  pool_options.max_restarts = 0;  // A counted restart would close the pool.
  auto pool = MakePool(pool_options);
  ASSERT_NE(pool, nullptr);
  const pid_t before = pool->Workers().at(0).pid;
  std::atomic<int> hard_callbacks{0};
  CallOptions options;  // A per-call limit, no pool default (billiard P2).
  options.timeout = absl::Milliseconds(200);
  options.timeout_callback = [&](bool soft, absl::Duration limit) {
    EXPECT_FALSE(soft);
    ++hard_callbacks;
  };
  absl::StatusOr<int> result = pool->Apply<int>("SleepMillis", 30'000, options);
  EXPECT_THAT(result.status(),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("hard time limit of 200 milliseconds")));
  EXPECT_EQ(GetPoolError(result.status()), PoolError::kTimeLimitExceeded);
  EXPECT_TRUE(Eventually([&] { return Exited(before); }));
  // Replaced, and still serving.
  EXPECT_EQ(*pool->Apply<int>("Square", 6), 36);
  ASSERT_TRUE(Eventually([&] {
    auto workers = pool->Workers();
    return workers.size() == 1 && workers[0].pid != before;
  }));
  pool->Close();
  ASSERT_OK(pool->Join());
  EXPECT_EQ(hard_callbacks.load(), 1);
  EXPECT_THAT(Log(), IsEmpty()) << "a hard limit is not an error exit";
}

TEST_P(PoolReliabilityTest, HardLimitEscalatesToKillWhenTermIsIgnored) {
  PoolOptions pool_options = Options(1);
  pool_options.hard_kill_grace = absl::Milliseconds(100);
  auto pool = MakePool(pool_options);
  ASSERT_NE(pool, nullptr);
  const pid_t before = pool->Workers().at(0).pid;
  CallOptions options;
  options.timeout = absl::Milliseconds(200);
  EXPECT_EQ(GetPoolError(pool->Apply<int>("IgnoreSigtermAndSleep", 60'000,
                                          options).status()),
            PoolError::kTimeLimitExceeded);
  // SIGTERM was ignored; the SIGKILL after the grace was not.
  ASSERT_TRUE(Eventually([&] { return Exited(before); }));
  EXPECT_EQ(*pool->Apply<int>("Square", 3), 9);
  pool->Close();
  ASSERT_OK(pool->Join());
}

// Runs `task` (it forks a grandchild, reports its pid, and hangs) under a
// hard limit, and checks the grandchild does not outlive the worker.
void ExpectHardLimitTakesTheGrandchild(Pool& pool, const std::string& task,
                                       int param) {
  const std::string report = absl::StrCat("/tmp/forkserver-grandchild-",
                                          ::getpid(), "-", param);
  ::unlink(report.c_str());
  CallOptions options;
  options.timeout = absl::Milliseconds(500);
  absl::StatusOr<AsyncResult> job = pool.ApplyAsync(task, report, options);
  ASSERT_OK(job.status());
  std::string grandchild_text;
  ASSERT_TRUE(Eventually([&] {
    std::ifstream file(report);
    return static_cast<bool>(std::getline(file, grandchild_text));
  }));
  pid_t grandchild = 0;
  ASSERT_TRUE(absl::SimpleAtoi(grandchild_text, &grandchild));
  UniqueFd watch(static_cast<int>(::syscall(SYS_pidfd_open, grandchild, 0)));
  EXPECT_EQ(GetPoolError(job->Get(absl::Seconds(30)).status()),
            PoolError::kTimeLimitExceeded);
  if (watch.valid()) {
    pollfd pfd{watch.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&pfd, 1, 10'000), 1) << "grandchild outlived its worker";
  }
  ::unlink(report.c_str());
}

TEST_P(PoolReliabilityTest, HardLimitKillsTheWorkersProcessGroup) {
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  ExpectHardLimitTakesTheGrandchild(*pool, "ForkGrandchild",
                                    static_cast<int>(GetParam()));
  pool->Close();
  ASSERT_OK(pool->Join());
}

// The worker dies of SIGTERM at once, so the KILL escalation finds it
// gone; its grandchild ignores SIGTERM. The group is SIGKILLed when the
// worker ends, before it is reaped (issue 7, item 9: it used to survive).
TEST_P(PoolReliabilityTest, HardLimitTakesGrandchildrenThatIgnoreSigterm) {
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  ExpectHardLimitTakesTheGrandchild(*pool, "ForkStubbornGrandchild",
                                    10 + static_cast<int>(GetParam()));
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, ZeroTimeLimitMeansZero) {
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  CallOptions options;
  options.timeout = absl::ZeroDuration();  // billiard P3: 0 meant "default".
  EXPECT_EQ(GetPoolError(pool->Apply<int>("SleepMillis", 30'000, options).status()),
            PoolError::kTimeLimitExceeded);
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, KilledWorkerFailsItsJobWithWorkerLost) {
  PoolOptions options = Options(1);
  options.lost_worker_timeout = absl::Milliseconds(50);
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  AsyncResult sleeper = StartSleeper(*pool);
  const pid_t pid = sleeper.WorkerPids().at(0);
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  absl::StatusOr<std::string> result = sleeper.Get(absl::Seconds(30));
  EXPECT_THAT(result.status(),
              StatusIs(absl::StatusCode::kAborted,
                       absl::StrCat("Worker exited prematurely: signal 9 "
                                    "(SIGKILL) Job: ",
                                    sleeper.id(), ".")));
  EXPECT_EQ(GetPoolError(result.status()), PoolError::kWorkerLost);
  // An exit code, and the log line for an unexpected exit.
  absl::StatusOr<AsyncResult> exits = pool->ApplyAsync("ExitWorker", 3);
  ASSERT_OK(exits.status());
  EXPECT_THAT(exits->Get(absl::Seconds(30)).status(),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("exitcode 3 Job:")));
  EXPECT_EQ(*pool->Apply<int>("Square", 4), 16);  // Replaced...
  ASSERT_EQ(pool->Workers().size(), 1u);
  EXPECT_EQ(pool->Workers()[0].index, 0);  // ...in the same slot.
  EXPECT_NE(pool->Workers()[0].pid, pid);
  pool->Close();
  ASSERT_OK(pool->Join());
  EXPECT_THAT(Log(), Contains(HasSubstr("exited with 'signal 9 (SIGKILL)'")));
  EXPECT_THAT(Log(), Contains(HasSubstr("exited with 'exitcode 3'")));
}

TEST_P(PoolReliabilityTest, ResultsSentBeforeDeathAreDelivered) {
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  // One worker, in order: a result, then its death in the same breath.
  absl::StatusOr<AsyncResult> first = pool->ApplyAsync("Square", 5);
  absl::StatusOr<AsyncResult> fatal = pool->ApplyAsync("ExitWorker", 9);
  ASSERT_OK(first.status());
  ASSERT_OK(fatal.status());
  EXPECT_EQ(*first->GetAs<int>(absl::Seconds(30)), 25);
  EXPECT_EQ(GetPoolError(fatal->Get(absl::Seconds(30)).status()),
            PoolError::kWorkerLost);
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, RecyclingAfterMaxTasksIsQuietAndUncounted) {
  PoolOptions options = Options(1);
  options.maxtasksperchild = 2;
  options.max_restarts = 0;  // Any counted restart would close the pool.
  options.on_process_exit = "RecordExit";
  const std::string exit_log = std::getenv("FORKSERVER_TEST_EXIT_LOG");
  ::unlink(exit_log.c_str());
  absl::Mutex mutex;
  std::vector<WorkerInfo> downs;
  options.on_process_down = [&](const WorkerInfo& info) {
    absl::MutexLock lock(&mutex);
    downs.push_back(info);
  };
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  std::vector<int> pids;
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<int> pid = pool->Apply<int>("WorkerPid", i);
    ASSERT_OK(pid.status()) << "task " << i;
    pids.push_back(*pid);
  }
  // Two tasks per worker, three workers.
  EXPECT_EQ(pids[0], pids[1]);
  EXPECT_NE(pids[1], pids[2]);
  EXPECT_EQ(pids[2], pids[3]);
  EXPECT_NE(pids[3], pids[4]);
  EXPECT_EQ(pids[4], pids[5]);
  pool->Close();
  ASSERT_OK(pool->Join());
  EXPECT_THAT(Log(), IsEmpty()) << "recycling is not an error";
  absl::MutexLock lock(&mutex);
  ASSERT_GE(downs.size(), 3u);
  EXPECT_EQ(downs[0].exitcode, 155);
  EXPECT_EQ(downs[1].exitcode, 155);
  EXPECT_EQ(downs[0].exit_reason, "completed 2 tasks");
  // The worker-side exit hook saw each recycling.
  std::ifstream file(exit_log);
  std::string line;
  int recycled = 0;
  while (std::getline(file, line)) {
    if (absl::EndsWith(line, " 155")) ++recycled;
  }
  EXPECT_EQ(recycled, 3);
  ::unlink(exit_log.c_str());
}

TEST_P(PoolReliabilityTest, MemoryLimitRecyclesAfterTheTaskThatCrossedIt) {
  PoolOptions options = Options(1);
  options.max_memory_per_child_kib = 96 * 1024;
  options.max_restarts = 0;
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  const int small = *pool->Apply<int>("WorkerPid", 0);
  EXPECT_EQ(*pool->Apply<int>("WorkerPid", 0), small) << "recycled too early";
  // The big task's result is delivered; its worker does not run another.
  absl::StatusOr<int> big = pool->Apply<int>("AllocateMib", 200);
  ASSERT_OK(big.status());
  EXPECT_EQ(*big, small);
  EXPECT_NE(*pool->Apply<int>("WorkerPid", 0), small);
  pool->Close();
  ASSERT_OK(pool->Join());
  EXPECT_THAT(Log(), IsEmpty());
}

TEST_P(PoolReliabilityTest, TerminateJobFailsItWithTerminated) {
  PoolOptions options = Options(2);
  options.max_restarts = 0;
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  AsyncResult sleeper = StartSleeper(*pool);
  const pid_t pid = sleeper.WorkerPids().at(0);
  ASSERT_OK(pool->TerminateJob(pid));
  absl::StatusOr<std::string> result = sleeper.Get(absl::Seconds(30));
  EXPECT_THAT(result.status(),
              StatusIs(absl::StatusCode::kCancelled,
                       absl::StrCat("Terminated: job ", sleeper.id(),
                                    " was terminated by signal 15 (SIGTERM)")));
  EXPECT_EQ(GetPoolError(result.status()), PoolError::kTerminated);
  EXPECT_THAT(pool->TerminateJob(1), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(*pool->Apply<int>("Square", 2), 4);  // Not closed: uncounted.
  pool->Close();
  ASSERT_OK(pool->Join());
  EXPECT_THAT(Log(), IsEmpty()) << "terminate_job logs no error";
}

TEST_P(PoolReliabilityTest, CrashingInitializerTripsTheRestartLimiter) {
  PoolOptions options = Options(2);
  options.initializer = "InitFails";
  options.initializer_arg = "the database";
  options.max_restarts = 5;
  options.max_restart_freq = absl::Seconds(30);
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  EXPECT_FALSE(pool->DidStartOk());
  absl::StatusOr<AsyncResult> pending = pool->ApplyAsync("Square", 1);
  // It may be refused outright if the limiter already tripped.
  if (pending.ok()) {
    absl::StatusOr<std::string> result = pending->Get(absl::Seconds(60));
    EXPECT_THAT(result.status(),
                StatusIs(absl::StatusCode::kResourceExhausted,
                         HasSubstr("RestartFreqExceeded: 6 in 30s")));
  }
  ASSERT_TRUE(Eventually([&] {
    return !pool->ApplyAsync("Square", 1).ok();
  }));
  absl::Status refused = pool->ApplyAsync("Square", 1).status();
  EXPECT_EQ(GetPoolError(refused), PoolError::kRestartFreqExceeded);
  EXPECT_THAT(pool->MaintainPool(),
              StatusIs(absl::StatusCode::kResourceExhausted));
  ASSERT_OK(pool->Join());  // Closed by the limiter: joinable.
  EXPECT_THAT(Log(), Contains(HasSubstr("initializer 'InitFails' failed")));
}

TEST_P(PoolReliabilityTest, DefaultLimiterStopsACrashLoop) {
  PoolOptions options = Options(2);
  options.initializer = "InitFails";  // Defaults: 200 in 1 s.
  options.log = [](absl::string_view) {};
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  ASSERT_TRUE(Eventually([&] { return !pool->MaintainPool().ok(); },
                         absl::Seconds(120)));
  EXPECT_EQ(GetPoolError(pool->MaintainPool()), PoolError::kRestartFreqExceeded);
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, ShrinkWithAllBusyFailsAndRetiresNothing) {
  auto pool = MakePool(Options(2));
  ASSERT_NE(pool, nullptr);
  AsyncResult a = StartSleeper(*pool);
  AsyncResult b = StartSleeper(*pool);
  const std::vector<WorkerInfo> before = pool->Workers();
  EXPECT_THAT(pool->Shrink(1), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        "Can't shrink pool. All processes busy!"));
  EXPECT_EQ(pool->Workers().size(), 2u);
  for (const WorkerInfo& w : before) EXPECT_FALSE(Exited(w.pid));
  ASSERT_OK(pool->TerminateJob(a.WorkerPids()[0]));
  ASSERT_OK(pool->TerminateJob(b.WorkerPids()[0]));
  (void)a.Get();
  (void)b.Get();
  // Idle now: shrinking works, growing adds at once.
  ASSERT_TRUE(Eventually([&] { return pool->Shrink(1).ok(); }));
  EXPECT_EQ(pool->processes(), 1);
  ASSERT_TRUE(Eventually([&] { return pool->Workers().size() == 1; }));
  EXPECT_THAT(pool->Shrink(1), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("at least one")));
  ASSERT_OK(pool->Grow(2));
  EXPECT_EQ(pool->processes(), 3);
  // Grow starts its two at once; a worker still leaving may be listed for
  // a moment beside them.
  EXPECT_TRUE(Eventually([&] { return pool->Workers().size() == 3u; }));
  absl::StatusOr<std::vector<int>> squares =
      pool->Map<int>("Square", std::vector<int>{1, 2, 3});
  ASSERT_OK(squares.status());
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, RestartReplacesEveryWorkerWhateverTheOptions) {
  PoolOptions options = Options(2);
  options.allow_restart = false;  // billiard P5 crashed here.
  options.max_restarts = 0;
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  std::set<pid_t> old_pids;
  for (const WorkerInfo& w : pool->Workers()) old_pids.insert(w.pid);
  ASSERT_OK(pool->Restart());
  ASSERT_TRUE(Eventually([&] {
    std::vector<WorkerInfo> workers = pool->Workers();
    if (workers.size() != 2) return false;
    for (const WorkerInfo& w : workers) {
      if (old_pids.count(w.pid) > 0) return false;
    }
    return true;
  }));
  EXPECT_EQ(*pool->Apply<int>("Square", 9), 81);
  pool->Close();
  ASSERT_OK(pool->Join());
  EXPECT_THAT(Log(), IsEmpty());
}

TEST_P(PoolReliabilityTest, CloseDeliversResultsOfRunningTasks) {
  auto pool = MakePool(Options(2));
  ASSERT_NE(pool, nullptr);
  std::vector<AsyncResult> results;
  for (int i = 0; i < 6; ++i) {
    absl::StatusOr<AsyncResult> r = pool->ApplyAsync("SleepMillis", 50);
    ASSERT_OK(r.status());
    results.push_back(*r);
  }
  pool->Close();
  ASSERT_OK(pool->Join());
  for (const AsyncResult& r : results) {
    EXPECT_TRUE(r.Ready());
    EXPECT_TRUE(r.Successful());
  }
}

TEST_P(PoolReliabilityTest, TerminateEndsEveryJobNoneVanishes) {
  auto pool = MakePool(Options(2));
  ASSERT_NE(pool, nullptr);
  std::vector<AsyncResult> results;
  results.push_back(StartSleeper(*pool));
  results.push_back(StartSleeper(*pool));
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<AsyncResult> r = pool->ApplyAsync("Square", i);
    ASSERT_OK(r.status());
    results.push_back(*r);
  }
  ASSERT_OK(pool->Terminate());
  for (const AsyncResult& r : results) {
    ASSERT_TRUE(r.Ready()) << "job " << r.id() << " vanished";
    absl::Status status = r.Get().status();
    if (!status.ok()) {
      EXPECT_THAT(GetPoolError(status),
                  ::testing::AnyOf(PoolError::kTerminated, PoolError::kCancelled))
          << status;
    }
  }
  EXPECT_EQ(GetPoolError(results[0].Get().status()), PoolError::kTerminated);
  ASSERT_OK(pool->Join());
}

// kill -9 a busy worker, again and again: every job ends, none hangs.
TEST_P(PoolReliabilityTest, KillLoopLosesNothing) {
  PoolOptions options = Options(2);
  options.lost_worker_timeout = absl::ZeroDuration();
  options.log = [](absl::string_view) {};
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  const int rounds = GetParam() == StartMethod::kSpawn ? 30 : 120;
  int lost = 0;
  for (int round = 0; round < rounds; ++round) {
    AsyncResult victim = StartSleeper(*pool);
    absl::StatusOr<AsyncResult> bystander = pool->ApplyAsync("Square", round);
    ASSERT_OK(bystander.status());
    ASSERT_EQ(::kill(victim.WorkerPids().at(0), SIGKILL), 0);
    absl::StatusOr<std::string> killed = victim.Get(absl::Seconds(30));
    ASSERT_TRUE(victim.Ready()) << "round " << round << ": job hung";
    EXPECT_EQ(GetPoolError(killed.status()), PoolError::kWorkerLost)
        << killed.status();
    lost += GetPoolError(killed.status()) == PoolError::kWorkerLost;
    absl::StatusOr<int> square = bystander->GetAs<int>(absl::Seconds(30));
    ASSERT_OK(square.status()) << "round " << round;
    EXPECT_EQ(*square, round * round);
  }
  EXPECT_EQ(lost, rounds);
  EXPECT_OK(pool->MaintainPool());  // Never tripped: each ACK resets it.
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, PutlocksBlockUntilASlotIsFree) {
  PoolOptions options = Options(2);
  options.putlocks = true;
  options.semaphore = 1;
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<AsyncResult> first = pool->ApplyAsync("SleepMillis", 200);
  ASSERT_OK(first.status());
  // Blocks until `first` is done: one slot.
  absl::StatusOr<AsyncResult> second = pool->ApplyAsync("Square", 3);
  ASSERT_OK(second.status());
  EXPECT_TRUE(first->Ready());
  // Per-call override: no waiting.
  CallOptions no_wait;
  no_wait.wait_for_slot = false;
  ASSERT_OK(pool->ApplyAsync("Square", 4, no_wait).status());
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, SynackLetsAQueuedJobBeCancelled) {
  PoolOptions options = Options(1);
  options.synack = true;
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  AsyncResult running = StartSleeper(*pool);
  absl::StatusOr<AsyncResult> queued = pool->ApplyAsync("Square", 3);
  ASSERT_OK(queued.status());
  EXPECT_THAT(running.Cancel(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                         HasSubstr("running")));
  ASSERT_OK(queued->Cancel());
  EXPECT_EQ(GetPoolError(queued->Get().status()), PoolError::kCancelled);
  ASSERT_OK(pool->TerminateJob(running.WorkerPids().at(0)));
  EXPECT_EQ(*pool->Apply<int>("Square", 5), 25);
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, LifecycleCallbacks) {
  PoolOptions options = Options(2);
  absl::Mutex mutex;
  std::vector<WorkerInfo> ups, downs;
  std::vector<JobId> set, cancelled;
  options.on_process_up = [&](const WorkerInfo& w) {
    absl::MutexLock lock(&mutex);
    ups.push_back(w);
  };
  options.on_process_down = [&](const WorkerInfo& w) {
    absl::MutexLock lock(&mutex);
    downs.push_back(w);
  };
  options.timeout = absl::Seconds(60);
  options.on_timeout_set = [&](JobId job, std::optional<absl::Duration> soft,
                               std::optional<absl::Duration> hard) {
    absl::MutexLock lock(&mutex);
    set.push_back(job);
    EXPECT_EQ(soft, std::nullopt);
    EXPECT_EQ(hard, absl::Seconds(60));
  };
  options.on_timeout_cancel = [&](JobId job) {
    absl::MutexLock lock(&mutex);
    cancelled.push_back(job);
  };
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<AsyncResult> job = pool->ApplyAsync("Square", 2);
  ASSERT_OK(job.status());
  ASSERT_OK(job->Get().status());
  pool->Close();
  ASSERT_OK(pool->Join());
  absl::MutexLock lock(&mutex);
  EXPECT_EQ(ups.size(), 2u);
  EXPECT_EQ(downs.size(), 2u);
  for (const WorkerInfo& w : downs) EXPECT_EQ(w.exitcode, 0);
  EXPECT_THAT(set, ::testing::ElementsAre(job->id()));
  EXPECT_THAT(cancelled, ::testing::ElementsAre(job->id()));
}

// Event-loop mode: no helper thread; a plain epoll loop drives the pool.
TEST_P(PoolReliabilityTest, EventLoopModeNeedsNoThreads) {
  const int threads_before = SettledThreadCount();
  PoolOptions options = Options(2);
  options.threads = false;
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(testing::ThreadCount(), threads_before);
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  auto readers = pool->Readers();
  ASSERT_FALSE(readers.empty());
  for (size_t i = 0; i < readers.size(); ++i) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = i;
    ASSERT_EQ(::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, readers[i].first, &event), 0);
  }
  std::vector<AsyncResult> results;
  for (int i = 0; i < 20; ++i) {
    absl::StatusOr<AsyncResult> r = pool->ApplyAsync("Square", i);
    ASSERT_OK(r.status());
    results.push_back(*r);
  }
  CallOptions limited;
  limited.timeout = absl::Milliseconds(100);
  absl::StatusOr<AsyncResult> too_slow =
      pool->ApplyAsync("SleepMillis", 30'000, limited);
  ASSERT_OK(too_slow.status());
  auto all_ready = [&] {
    for (const AsyncResult& r : results) {
      if (!r.Ready()) return false;
    }
    return too_slow->Ready();
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!all_ready() && absl::Now() < deadline) {
    epoll_event events[8];
    const int n = ::epoll_wait(epoll.get(), events, 8, 100);
    for (int i = 0; i < n; ++i) readers[events[i].data.u64].second();
  }
  ASSERT_TRUE(all_ready());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(*results[i].GetAs<int>(), i * i);
  EXPECT_EQ(GetPoolError(too_slow->Get().status()), PoolError::kTimeLimitExceeded);
  EXPECT_EQ(testing::ThreadCount(), threads_before);
  pool->Close();
  ASSERT_OK(pool->Join());
}

// A job that finishes just before TerminateJob's signal lands: its result
// is delivered, and the worker's death is still the pool's doing (no error
// log, no restart counted), found by review.
TEST_P(PoolReliabilityTest, TerminateJobRacingTheJobsEndIsStillControlled) {
  PoolOptions options = Options(2);
  options.max_restarts = 0;  // A counted restart would close the pool.
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  // Hold the helper thread in a callback, so results pile up unread.
  absl::Notification held, release;
  CallOptions blocking;
  blocking.callback = [&](const std::string&) {
    held.Notify();
    release.WaitForNotification();
  };
  ASSERT_OK(pool->ApplyAsync("Square", 1, blocking).status());
  held.WaitForNotification();
  const std::string marker = absl::StrCat("/tmp/forkserver-touched-",
                                          ::getpid(), "-", static_cast<int>(GetParam()));
  ::unlink(marker.c_str());
  absl::StatusOr<AsyncResult> quick = pool->ApplyAsync("TouchFile", marker);
  ASSERT_OK(quick.status());
  // The task has run (its file exists) and its result is on its way or
  // waiting unread: now signal every worker.
  ASSERT_TRUE(Eventually([&] { return ::access(marker.c_str(), F_OK) == 0; }));
  ::unlink(marker.c_str());
  const std::vector<WorkerInfo> workers = pool->Workers();
  for (const WorkerInfo& worker : workers) {
    (void)pool->TerminateJob(worker.pid);
  }
  release.Notify();
  (void)quick->Get(absl::Seconds(30));  // Value or Terminated: both fine.
  ASSERT_TRUE(quick->Ready());
  EXPECT_OK(pool->MaintainPool());  // Not closed by the limiter.
  EXPECT_EQ(*pool->Apply<int>("Square", 7), 49);
  pool->Close();
  ASSERT_OK(pool->Join());
  EXPECT_THAT(Log(), IsEmpty());
}

TEST_P(PoolReliabilityTest, PutlockSubmitFromACallbackIsAnErrorNotADeadlock) {
  PoolOptions options = Options(2);
  options.putlocks = true;
  options.semaphore = 1;
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  // The one slot is taken by a long job...
  AsyncResult holder = StartSleeper(*pool);
  // ...and a job that skips the put lock tries, from its callback, to
  // submit one that would wait for it: only the callback's own thread
  // could free it.
  absl::Notification done;
  absl::Status from_callback;
  CallOptions skip;
  skip.wait_for_slot = false;
  skip.callback = [&](const std::string&) {
    from_callback = pool->ApplyAsync("Square", 2).status();
    done.Notify();
  };
  ASSERT_OK(pool->ApplyAsync("Square", 1, skip).status());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_THAT(from_callback, StatusIs(absl::StatusCode::kFailedPrecondition,
                                      HasSubstr("wait_for_slot")));
  ASSERT_OK(pool->TerminateJob(holder.WorkerPids().at(0)));
  (void)holder.Get();
  EXPECT_EQ(*pool->Apply<int>("Square", 3), 9);  // Still serving.
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, DestroyingThePoolFromItsOwnCallbackIsSafe) {
  const int threads_before = SettledThreadCount();
  std::unique_ptr<Pool> pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  absl::Notification destroyed;
  CallOptions options;
  options.callback = [&](const std::string&) {
    pool.reset();  // The last owner lets go, on the pool's own thread.
    destroyed.Notify();
  };
  absl::StatusOr<AsyncResult> job = pool->ApplyAsync("Square", 2, options);
  ASSERT_OK(job.status());
  ASSERT_TRUE(destroyed.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(*job->GetAs<int>(), 4);
  // The helper thread finishes the shutdown and goes.
  EXPECT_TRUE(Eventually([&] { return testing::ThreadCount() == threads_before; }));
}

TEST_P(PoolReliabilityTest, RestartedWorkersKeepIndicesInRange) {
  auto pool = MakePool(Options(2));
  ASSERT_NE(pool, nullptr);
  ASSERT_TRUE(pool->DidStartOk());
  std::set<pid_t> old_pids;
  for (const WorkerInfo& w : pool->Workers()) old_pids.insert(w.pid);
  ASSERT_OK(pool->Restart());
  ASSERT_TRUE(Eventually([&] {
    std::vector<WorkerInfo> workers = pool->Workers();
    return workers.size() == 2 && old_pids.count(workers[0].pid) == 0 &&
           old_pids.count(workers[1].pid) == 0;
  }));
  std::set<int> indices;
  for (const WorkerInfo& w : pool->Workers()) indices.insert(w.index);
  EXPECT_EQ(indices, (std::set<int>{0, 1}));
  absl::StatusOr<std::vector<int>> seen =
      pool->Map<int>("WorkerIndex", std::vector<int>(20, 0));
  ASSERT_OK(seen.status());
  for (int index : *seen) EXPECT_TRUE(index == 0 || index == 1) << index;
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolReliabilityTest, DidStartOkIsTrueForAHealthyPool) {
  auto pool = MakePool(Options(2));
  ASSERT_NE(pool, nullptr);
  EXPECT_TRUE(pool->DidStartOk());
  pool->Close();
  ASSERT_OK(pool->Join());
}

INSTANTIATE_TEST_SUITE_P(StartMethods, PoolReliabilityTest,
                         testing::EveryStartMethod(), testing::MethodTestName);

}  // namespace
}  // namespace forkserver
