// The child-setup steps and the spawner, driven directly.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "forkserver/child/child_setup.h"
#include "forkserver/child/spawner.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;
using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

int Reap(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

absl::Status RunExec(const char* path, const char* cwd = nullptr) {
  static char arg0[] = "child";
  static char* argv[] = {arg0, nullptr};
  static char* envp[] = {nullptr};
  ChildSetupPlan plan;
  plan.exec_path = path;
  plan.exec_argv = argv;
  plan.exec_envp = envp;
  plan.cwd = cwd;
  absl::StatusOr<ForkedChild> child = ForkChild(plan);
  if (!child.ok()) return child.status();
  absl::Status setup =
      AwaitChildSetup(child->report.get(), absl::Now() + absl::Seconds(30));
  Reap(child->pid);
  return setup;
}

TEST(ChildSetupTest, ExecFailureNamesTheStep) {
  EXPECT_THAT(RunExec("/no/such/program"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("step 'execve' failed")));
  EXPECT_THAT(RunExec("/bin/true", "/no/such/dir"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("step 'chdir' failed")));
  EXPECT_OK(RunExec("/bin/true"));
}

// Forks a child with `plan` (entry mode) that runs `body`, which returns
// the child's exit code.
template <typename Body>
int RunInChild(ChildSetupPlan plan, Body body) {
  absl::StatusOr<ForkedChild> child = ForkChild(plan);
  if (!child.ok()) {
    ADD_FAILURE() << child.status();
    return -1;
  }
  if (child->pid == 0) ::_exit(body());
  EXPECT_OK(AwaitChildSetup(child->report.get(), absl::Now() + absl::Seconds(30)));
  const int status = Reap(child->pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(ChildSetupTest, InstallsSwappedAndSelfMappedDescriptors) {
  // Three pipes whose write ends sit at 40, 41, 42. Ask for 41 -> 40,
  // 40 -> 41 (a swap) and 42 -> 42 (onto itself): each child fd must be the
  // right pipe, and none may keep O_CLOEXEC.
  std::vector<std::pair<UniqueFd, UniqueFd>> pipes;
  for (int i = 0; i < 3; ++i) {
    auto [read_end, write_end] = MakePipe();
    UniqueFd high(::fcntl(write_end.get(), F_DUPFD_CLOEXEC, 40 + i));
    ASSERT_EQ(high.get(), 40 + i) << "fd " << 40 + i << " already taken";
    pipes.emplace_back(std::move(read_end), std::move(high));
  }
  ChildSetupPlan plan;
  plan.fd_count = 3;
  plan.source_fds[0] = 41;
  plan.target_fds[0] = 40;
  plan.source_fds[1] = 40;
  plan.target_fds[1] = 41;
  plan.source_fds[2] = 42;
  plan.target_fds[2] = 42;
  const int code = RunInChild(plan, [] {
    for (int fd : {40, 41, 42}) {
      if (::fcntl(fd, F_GETFD) & FD_CLOEXEC) return 1;
      const std::string tag = absl::StrCat(fd);
      if (::write(fd, tag.data(), tag.size()) != 2) return 2;
    }
    return 0;
  });
  EXPECT_EQ(code, 0);
  for (auto& [read_end, write_end] : pipes) write_end.reset();
  EXPECT_EQ(ReadUntilEof(pipes[0].first.get()), "41");  // Pipe 0 was at 40.
  EXPECT_EQ(ReadUntilEof(pipes[1].first.get()), "40");
  EXPECT_EQ(ReadUntilEof(pipes[2].first.get()), "42");
}

TEST(ChildSetupTest, ClosedSourceFailsInstallFds) {
  ChildSetupPlan plan;
  plan.fd_count = 1;
  plan.source_fds[0] = 999;  // Not open.
  plan.target_fds[0] = 3;
  absl::StatusOr<ForkedChild> child = ForkChild(plan);
  ASSERT_OK(child.status());
  if (child->pid == 0) ::_exit(0);  // Not reached: setup fails.
  EXPECT_THAT(AwaitChildSetup(child->report.get(), absl::Now() + absl::Seconds(30)),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("step 'install_fds' failed: Bad file")));
  const int status = Reap(child->pid);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kChildSetupFailedExitCode);
}

TEST(ChildSetupTest, NewSessionAndCleanSignalState) {
  // The parent's handlers and mask must not leak into the child.
  struct sigaction ignore = {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_usr1, old_usr2;
  ASSERT_EQ(::sigaction(SIGUSR1, &ignore, &old_usr1), 0);
  struct sigaction handler = {};
  handler.sa_handler = [](int) {};
  ASSERT_EQ(::sigaction(SIGUSR2, &handler, &old_usr2), 0);
  sigset_t blocked, old_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGHUP);
  ASSERT_EQ(::sigprocmask(SIG_BLOCK, &blocked, &old_mask), 0);

  ChildSetupPlan plan;
  const int code = RunInChild(plan, [] {
    if (::getsid(0) != ::getpid()) return 1;
    if (::getpgrp() != ::getpid()) return 2;
    struct sigaction current;
    ::sigaction(SIGUSR1, nullptr, &current);
    if (current.sa_handler != SIG_DFL) return 3;
    ::sigaction(SIGUSR2, nullptr, &current);
    if (current.sa_handler != SIG_DFL) return 4;
    sigset_t mask;
    ::sigprocmask(SIG_SETMASK, nullptr, &mask);
    if (sigismember(&mask, SIGHUP)) return 5;
    return 0;
  });
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  ::sigaction(SIGUSR2, &old_usr2, nullptr);
  EXPECT_EQ(code, 0);
}

TEST(ChildSetupTest, ParentDeathSignalIsSet) {
  ChildSetupPlan plan;
  plan.parent_death_signal = SIGKILL;
  plan.expected_parent = ::getpid();
  const int code = RunInChild(plan, [] {
    int sig = 0;
    ::prctl(PR_GET_PDEATHSIG, &sig);
    return sig == SIGKILL ? 0 : 1;
  });
  EXPECT_EQ(code, 0);
}

TEST(ChildSetupTest, ParentDeathCheckCatchesAWrongParent) {
  ChildSetupPlan plan;
  plan.parent_death_signal = SIGKILL;
  plan.expected_parent = 1;  // Not our pid: as if the parent had died.
  absl::StatusOr<ForkedChild> child = ForkChild(plan);
  ASSERT_OK(child.status());
  if (child->pid == 0) ::_exit(0);
  EXPECT_THAT(AwaitChildSetup(child->report.get(), absl::Now() + absl::Seconds(30)),
              StatusIs(absl::StatusCode::kInternal,
                       HasSubstr("step 'parent_death' failed")));
  Reap(child->pid);
}

TEST(ChildSetupTest, ClosingByListingClosesExactlyTheRange) {
  // The fallback for when close_range(2) is refused (old kernel, seccomp).
  std::vector<UniqueFd> fds;
  for (int fd = 60; fd <= 70; ++fd) {
    fds.emplace_back(::fcntl(0, F_DUPFD_CLOEXEC, fd));
    ASSERT_EQ(fds.back().get(), fd) << "fd " << fd << " already taken";
  }
  ASSERT_EQ(CloseFdRangeByListingAsyncSafe(62, 67), 0);
  for (int fd = 60; fd <= 70; ++fd) {
    const bool open = ::fcntl(fd, F_GETFD) >= 0;
    EXPECT_EQ(open, fd < 62 || fd > 67) << "fd " << fd;
  }
  for (UniqueFd& fd : fds) {
    if (fd.get() >= 62 && fd.get() <= 67) (void)fd.release();  // Closed.
  }
}

TEST(ChildSetupTest, CountThreadsSeesThreads) {
  absl::StatusOr<int> alone = CountThreads();
  ASSERT_OK(alone.status());
  std::atomic<bool> stop{false};
  std::thread thread([&] {
    while (!stop) absl::SleepFor(absl::Milliseconds(1));
  });
  absl::StatusOr<int> with_thread = CountThreads();
  stop = true;
  thread.join();
  ASSERT_OK(with_thread.status());
  EXPECT_EQ(*with_thread, *alone + 1);
}

}  // namespace
}  // namespace forkserver
