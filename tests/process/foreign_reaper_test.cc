// Issue 7, item 11: an application that reaps with waitpid(-1) or ignores
// SIGCHLD must not take the exit status of our local children.
//   "fork" from a single-threaded application: clone3(CLONE_PIDFD)
//     children with exit_signal 0: no SIGCHLD, no auto-reap, invisible to
//     waitpid(-1) without __WALL; we join them through the pidfd. Nothing
//     is ever stolen (IgnoredSigchldLosesNoStatus).
//   "fork" from an application with threads (the reaper thread here):
//     glibc's fork(), so that malloc works in the child (start_method.h);
//     a SIGCHLD child, reaped by the foreign reaper like a spawn child and
//     its status read back from the pidfd.
//   "spawn": execve resets the exit signal to SIGCHLD (fs/exec.c,
//     de_thread: "tsk->exit_signal = SIGCHLD"), so the foreign reaper does
//     reap them; the exit code is read back from the pidfd
//     (PIDFD_GET_INFO / PIDFD_INFO_EXIT, Linux 6.15). Skipped on older
//     kernels, where the status is lost (ChildHandle::WaitForExit says so).

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>

#include <atomic>
#include <csignal>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

FORKSERVER_ENTRY(ExitSeven, absl::string_view) { return 7; }
FORKSERVER_ENTRY(DieOfSigterm, absl::string_view) {
  ::raise(SIGTERM);
  return 0;
}

// Whether this kernel keeps an exit status for the pidfd (6.15+): asked of
// a child that has ended, as the library would.
bool KernelKeepsExitStatus() {
  struct Info {
    uint64_t mask, cgroupid;
    uint32_t ids[11];
    int32_t exit_code;
    uint32_t coredump[2];
    uint64_t supported;
  } info{};
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  ::waitpid(pid, nullptr, 0);
  info.mask = 1ull << 3;  // PIDFD_INFO_EXIT
  const bool kept = ::ioctl(pidfd, _IOWR(0xFF, 11, Info), &info) == 0 &&
                    (info.mask & (1ull << 3)) != 0;
  ::close(pidfd);
  return kept;
}

class ForeignReaperTest : public ::testing::TestWithParam<StartMethod> {
 protected:
  void SetUp() override {
    if (!KernelKeepsExitStatus()) {
      GTEST_SKIP() << "kernel before 6.15: a reaped child's status is "
                      "lost (no PIDFD_INFO_EXIT)";
    }
  }

  void RunBoth() {
    ProcessOptions options;
    options.start_method = GetParam();
    for (int i = 0; i < 10; ++i) {
      Process seven("ExitSeven", "", options);
      Process killed("DieOfSigterm", "", options);
      ASSERT_OK(seven.Start());
      ASSERT_OK(killed.Start());
      ASSERT_OK(seven.Join(absl::Seconds(30)));
      ASSERT_OK(killed.Join(absl::Seconds(30)));
      EXPECT_EQ(seven.exitcode(), 7);
      EXPECT_EQ(killed.exitcode(), -SIGTERM);
    }
  }
};

TEST_P(ForeignReaperTest, WaitpidMinusOneInAnotherThreadLosesNoStatus) {
  std::atomic<bool> stop{false};
  std::atomic<int> stolen{0};
  // The application's reaper: takes whatever child of ours it can.
  std::thread reaper([&] {
    while (!stop.load()) {
      int status;
      if (::waitpid(-1, &status, WNOHANG) > 0) ++stolen;
      std::this_thread::yield();
    }
  });
  RunBoth();
  stop = true;
  reaper.join();
  // Children are reaped by it (RunBoth checked that their statuses came
  // back through the pidfd anyway); the count is for the log.
  RecordProperty("stolen", stolen.load());
}

TEST_P(ForeignReaperTest, IgnoredSigchldLosesNoStatus) {
  struct sigaction ignore {}, saved{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGCHLD, &ignore, &saved), 0);
  RunBoth();
  ASSERT_EQ(::sigaction(SIGCHLD, &saved, nullptr), 0);
}

// The single-threaded path: an exit_signal-0 child, which waitpid(-1)
// cannot see even once it has exited.
TEST(ForkChildOfSingleThreadedApplication, IsInvisibleToWaitpidMinusOne) {
  ProcessOptions options;
  options.start_method = StartMethod::kFork;
  Process seven("ExitSeven", "", options);
  ASSERT_OK(seven.Start());
  pollfd exited{seven.sentinel(), POLLIN, 0};
  ASSERT_EQ(::poll(&exited, 1, 30'000), 1) << "the child did not exit in 30 s";
  int status = 0;
  EXPECT_LE(::waitpid(-1, &status, WNOHANG), 0) << "waitpid(-1) reaped our child";
  ASSERT_OK(seven.Join(absl::Seconds(30)));
  EXPECT_EQ(seven.exitcode(), 7);
}

INSTANTIATE_TEST_SUITE_P(LocalStartMethods, ForeignReaperTest,
                         ::testing::Values(StartMethod::kFork,
                                           StartMethod::kSpawn),
                         testing::MethodTestName);

}  // namespace
}  // namespace forkserver
