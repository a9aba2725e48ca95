// Workers forked while the pool is busy (issue 7's "nothing hangs"): with
// the "fork" start method every replacement is a copy of this process,
// taken while the pool's helper thread reads results and runs callbacks
// that allocate. A copy taken while that thread held an allocator lock or
// the pool's mutex waits for ever on its first allocation (a CI run hung
// an hour that way, under ASan). Every task here retires its worker, so
// the test forks one worker per task. The application's own threads are
// its affair (the "fork" start method's rule, lib/process/process.h):
// here the only one, the test's, waits in Get.

#include <atomic>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/pool/pool_fixture.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

constexpr int kTasks = 200;

TEST(ForkChurnTest, ReplacementsForkedUnderLoadAllStartAndNothingHangs) {
  if (*testing::ForkPoolUntestableHere() != 0) {
    GTEST_SKIP() << testing::ForkPoolUntestableHere();
  }
  PoolOptions options;
  options.processes = 2;
  options.start_method = StartMethod::kFork;
  options.maxtasksperchild = 1;
  // Allocating callbacks on the helper thread, between forks.
  std::atomic<int> ups{0};
  std::vector<std::string> seen;
  options.on_process_up = [&](const WorkerInfo& info) {
    seen.push_back(std::string(4096, 'x') + std::to_string(info.pid));
    if (seen.size() > 64) seen.clear();
    ++ups;
  };
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(std::move(options));
  ASSERT_TRUE(pool.ok()) << pool.status();

  std::vector<AsyncResult> results;
  for (int i = 0; i < kTasks; ++i) {
    CallOptions call;
    call.callback = [](const std::string& value) {
      std::vector<std::string> copies(8, std::string(16384, 'y') + value);
    };
    absl::StatusOr<AsyncResult> r = (*pool)->ApplyAsync("Square", i, std::move(call));
    ASSERT_TRUE(r.ok()) << r.status();
    results.push_back(*std::move(r));
  }
  int finished = 0;
  for (int i = 0; i < kTasks; ++i) {
    // Bounded: a worker hung at its start leaves its task unfinished, and
    // the test says which instead of hanging with it.
    absl::StatusOr<int> value = results[i].GetAs<int>(absl::Seconds(120));
    ASSERT_TRUE(value.ok()) << "task " << i << " of " << kTasks << ": " << value.status()
                            << " (workers started so far: " << ups.load() << ")";
    EXPECT_EQ(*value, i * i);
    ++finished;
  }
  EXPECT_EQ(finished, kTasks);
  (*pool)->Close();
  ASSERT_TRUE((*pool)->Join().ok());
  // One worker per task, at least; the callbacks have all run by now.
  EXPECT_GE(ups.load(), kTasks);
}

}  // namespace
}  // namespace forkserver
