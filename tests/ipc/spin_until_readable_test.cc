// SpinUntilReadable: sees data that is there or arrives during the spin,
// gives up once its budget is spent, and never spins on one CPU.

#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/base/unique_fd.h"
#include "lib/base/wait_readable.h"

namespace forkserver {
namespace {

struct Pair {
  UniqueFd a, b;
};

Pair MakePair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

TEST(SpinUntilReadableTest, ZeroBudgetNeverSpins) {
  Pair pair = MakePair();
  ASSERT_EQ(::write(pair.b.get(), "x", 1), 1);
  // Readable, but a zero budget means "do not look": the caller blocks.
  EXPECT_FALSE(SpinUntilReadable(pair.a.get(), absl::ZeroDuration()));
}

TEST(SpinUntilReadableTest, GivesUpWhenNothingArrives) {
  Pair pair = MakePair();
  const absl::Time start = absl::Now();
  EXPECT_FALSE(SpinUntilReadable(pair.a.get(), absl::Milliseconds(2)));
  if (MayUseSeveralCpus()) {
    // It did spin for its budget (a lower bound only: never an upper one).
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(2));
  }
}

TEST(SpinUntilReadableTest, SeesDataAndHangUp) {
  if (!MayUseSeveralCpus()) {
    GTEST_SKIP() << "this process may use one CPU only: the spin is off";
  }
  Pair pair = MakePair();
  ASSERT_EQ(::write(pair.b.get(), "x", 1), 1);
  EXPECT_TRUE(SpinUntilReadable(pair.a.get(), absl::Seconds(60)));
  char byte;
  ASSERT_EQ(::read(pair.a.get(), &byte, 1), 1);
  pair.b = UniqueFd();  // EOF counts as readable: the caller's read reports it.
  EXPECT_TRUE(SpinUntilReadable(pair.a.get(), absl::Seconds(60)));
}

TEST(SpinUntilReadableTest, SeesDataThatArrivesDuringTheSpin) {
  if (!MayUseSeveralCpus()) {
    GTEST_SKIP() << "this process may use one CPU only: the spin is off";
  }
  Pair pair = MakePair();
  absl::Notification started;
  std::thread writer([&] {
    started.WaitForNotification();
    ASSERT_EQ(::write(pair.b.get(), "x", 1), 1);
  });
  started.Notify();
  // A generous budget: the writer runs on the other CPU.
  EXPECT_TRUE(SpinUntilReadable(pair.a.get(), absl::Seconds(60)));
  writer.join();
}

TEST(SpinUntilReadableTest, AffinityOfOneCpuTurnsItOff) {
  // In a child, so that this process keeps both CPUs for the other tests.
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0) ::_exit(2);
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) ::_exit(2);
    if (::write(fds[1], "x", 1) != 1) ::_exit(2);
    ::_exit(!MayUseSeveralCpus() &&
                    !SpinUntilReadable(fds[0], absl::Seconds(60))
                ? 0
                : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace forkserver
