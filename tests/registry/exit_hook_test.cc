// A Pool worker's exit hook (FORKSERVER_EXIT_HOOK) that throws does not
// change the worker's exit code (issue 7 item 19: 155 became 1).

#include <stdexcept>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

FORKSERVER_EXIT_HOOK(ThrowingHook, pid_t, int) {
  throw std::runtime_error("metrics server is down");
}

absl::StatusOr<int> Twice(const int& value, TaskContext&) {
  return 2 * value;
}
FORKSERVER_REGISTER_TASK(Twice);

TEST(ExitHookTest, ThrowingExitHookKeepsTheRecycleExitCode) {
  PoolOptions options;
  options.processes = 1;
  options.maxtasksperchild = 1;  // Recycled after each task: exit 155.
  options.on_process_exit = "ThrowingHook";
  absl::Mutex mutex;
  std::vector<WorkerInfo> downs;
  options.on_process_down = [&](const WorkerInfo& info) {
    absl::MutexLock lock(&mutex);
    downs.push_back(info);
  };
  absl::StatusOr<std::unique_ptr<Pool>> pool = Pool::Create(options);
  ASSERT_OK(pool.status());
  absl::StatusOr<int> result = (*pool)->Apply<int>("Twice", 21);
  ASSERT_OK(result.status());
  EXPECT_EQ(*result, 42);
  ASSERT_TRUE(testing::Eventually([&] {
    absl::MutexLock lock(&mutex);
    return !downs.empty();
  }));
  (*pool)->Close();
  ASSERT_OK((*pool)->Join());
  absl::MutexLock lock(&mutex);
  EXPECT_EQ(downs[0].exitcode, 155) << downs[0].exit_reason;
}

}  // namespace
}  // namespace forkserver
