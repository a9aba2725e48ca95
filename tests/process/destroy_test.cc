// Issue 7, item 8: ~Process of a running non-daemon worker waits only
// ProcessOptions::destroy_join_timeout, then ends it (SIGTERM, a grace,
// SIGKILL) and reaps it. It never blocks for ever, even on a worker that
// ignores SIGTERM.

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <csignal>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "lib/base/wait_readable.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

// Ignores SIGTERM, says so on fd 3, then sleeps for ever.
FORKSERVER_ENTRY(IgnoreTermAndSleep, absl::string_view) {
  ::signal(SIGTERM, SIG_IGN);
  if (!testing::WriteAll(3, "r")) return 1;
  while (true) ::pause();
  return 0;
}

class DestroyTest : public ::testing::TestWithParam<StartMethod> {};

TEST_P(DestroyTest, DestructorIsBoundedAndTheWorkerIsGone) {
  auto [ready_read, ready_write] = testing::MakePipe();
  ProcessOptions options;
  options.start_method = GetParam();
  options.destroy_join_timeout = absl::Milliseconds(200);
  options.fds = {{ready_write.get(), 3}};
  auto process =
      std::make_unique<Process>("IgnoreTermAndSleep", "", options);
  ASSERT_OK(process->Start());
  ready_write.reset();
  // One byte (the worker keeps fd 3 open, so no EOF comes).
  ASSERT_TRUE(WaitReadable(ready_read.get(), absl::Now() + absl::Seconds(60)));
  char ready = 0;
  ASSERT_EQ(::read(ready_read.get(), &ready, 1), 1);
  // Our own handle on the worker, valid after the Process is gone.
  UniqueFd pidfd(::fcntl(process->sentinel(), F_DUPFD_CLOEXEC, 3));
  ASSERT_TRUE(pidfd.valid());

  absl::Notification destroyed;
  const absl::Time start = absl::Now();
  std::thread destroyer([&] {
    process.reset();
    destroyed.Notify();
  });
  const bool returned =
      destroyed.WaitForNotificationWithTimeout(absl::Seconds(30));
  if (!returned) {
    // Unblock the destructor so the test can end: it failed already.
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
  }
  destroyer.join();
  ASSERT_TRUE(returned) << "~Process blocked on a running worker";
  // 200 ms bound + 1 s grace + the kill: well under 10 s.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_TRUE(WaitReadable(pidfd.get(), absl::InfinitePast()))
      << "the worker still runs";
}

INSTANTIATE_TEST_SUITE_P(AllStartMethods, DestroyTest,
                         ::testing::ValuesIn(testing::TestedStartMethods()),
                         testing::MethodTestName);

}  // namespace
}  // namespace forkserver
