// VforkExecChild (forkserver/child/vfork_exec.cc): exec mode in the
// parent's memory (CLONE_VM | CLONE_VFORK). Its report is complete when it
// returns, failing steps are named with their errno as on the fork path,
// the program gets exactly its descriptors, and the parent's own state
// (signal handlers, memory) is untouched by the child's setup.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "forkserver/child/child_setup.h"
#include "forkserver/child/spawner.h"
#include "tests/support/test_util.h"

extern char** environ;

namespace forkserver {
namespace {

using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;
using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

// The exit code of `child` (-N for signal N), reaped through its pidfd.
int ReapThroughPidfd(const ForkedChild& child) {
  siginfo_t info{};
  while (::syscall(SYS_waitid, P_PIDFD, child.pidfd.get(), &info, WEXITED,
                   nullptr) != 0) {
    if (errno != EINTR) {
      ADD_FAILURE() << "waitid(P_PIDFD): " << std::strerror(errno);
      return -1000;
    }
  }
  return info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
}

struct Launch {
  absl::Status setup;
  ChildSetupFailure failure{};
  int exitcode = -1000;
};

// Launches `argv` (argv[0] the path) through VforkExecChild with `plan`'s
// descriptors and `cwd`, and reaps it.
Launch VforkRun(std::vector<std::string> argv, ChildSetupPlan plan = {},
           const char* cwd = nullptr) {
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  plan.exec_path = args[0];
  plan.exec_argv = args.data();
  plan.exec_envp = environ;
  plan.cwd = cwd;
  Launch launch;
  absl::StatusOr<ForkedChild> child = VforkExecChild(plan);
  if (!child.ok()) {
    launch.setup = child.status();
    return launch;
  }
  EXPECT_GT(child->pid, 0);
  EXPECT_TRUE(child->pidfd.valid());
  if (VforkExecAvailable()) {
    EXPECT_TRUE(child->report_complete);
    EXPECT_FALSE(child->report.valid());
    launch.setup = ChildSetupResult(child->report_bytes.data(),
                                    child->report_bytes.size(),
                                    &launch.failure);
  } else {
    launch.setup =
        AwaitChildSetup(child->report.get(), absl::Now() + absl::Seconds(30));
  }
  launch.exitcode = ReapThroughPidfd(*child);
  return launch;
}

TEST(VforkExecTest, RunsTheProgramAndGivesItsPidfd) {
  Launch ok = VforkRun({"/bin/sh", "-c", "exit 7"});
  EXPECT_OK(ok.setup);
  EXPECT_EQ(ok.exitcode, 7);
}

TEST(VforkExecTest, ABadWorkingDirectoryIsTheChdirStepWithItsErrno) {
  Launch bad = VforkRun({"/bin/true"}, {}, "/no/such/directory");
  EXPECT_THAT(bad.setup, StatusIs(absl::StatusCode::kNotFound,
                                  HasSubstr("step 'chdir' failed")));
  if (VforkExecAvailable()) {
    EXPECT_EQ(static_cast<ChildStep>(bad.failure.step), ChildStep::kChdir);
    EXPECT_EQ(bad.failure.error, ENOENT);
  }
  EXPECT_EQ(bad.exitcode, kChildSetupFailedExitCode);
}

TEST(VforkExecTest, ANonExecutableFileIsTheExecveStepWithEacces) {
  // No x bit at all: EACCES even for root.
  char dir[] = "/tmp/vfork-exec-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string path = std::string(dir) + "/not-executable";
  {
    UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_TRUE(file.valid());
    ASSERT_EQ(::write(file.get(), "#!/bin/sh\n", 10), 10);
  }
  Launch denied = VforkRun({path});
  ::unlink(path.c_str());
  ::rmdir(dir);
  EXPECT_THAT(denied.setup, StatusIs(absl::StatusCode::kPermissionDenied,
                                     HasSubstr("step 'execve' failed")));
  if (VforkExecAvailable()) {
    EXPECT_EQ(static_cast<ChildStep>(denied.failure.step), ChildStep::kExecve);
    EXPECT_EQ(denied.failure.error, EACCES);
  }
  EXPECT_EQ(denied.exitcode, kChildSetupFailedExitCode);
}

TEST(VforkExecTest, AClosedSourceIsTheInstallFdsStep) {
  ChildSetupPlan plan;
  plan.fd_count = 1;
  plan.source_fds[0] = 999;  // Not open.
  plan.target_fds[0] = 3;
  Launch bad = VforkRun({"/bin/true"}, plan);
  EXPECT_THAT(bad.setup, StatusIs(absl::StatusCode::kInternal,
                                  HasSubstr("step 'install_fds' failed")));
  if (VforkExecAvailable()) {
    EXPECT_EQ(static_cast<ChildStep>(bad.failure.step), ChildStep::kInstallFds);
    EXPECT_EQ(bad.failure.error, EBADF);
  }
}

TEST(VforkExecTest, TheProgramGetsExactlyItsDescriptors) {
  // Clutter without O_CLOEXEC (exec alone would keep it) at 50..53; the
  // program must see its pipe at 3 and none of the clutter.
  std::vector<UniqueFd> clutter;
  for (int fd = 50; fd <= 53; ++fd) {
    const int number = ::fcntl(0, F_DUPFD, fd);
    ASSERT_EQ(number, fd) << "fd " << fd << " already taken";
    clutter.emplace_back(number);
  }
  auto [read_end, write_end] = MakePipe();
  ChildSetupPlan plan;
  plan.fd_count = 1;
  plan.source_fds[0] = write_end.get();
  plan.target_fds[0] = 3;
  Launch probe = VforkRun({"/bin/sh", "-c",
                      "echo three >&3; for n in 4 5 6 7 8 9 50 51 52 53; do "
                      "[ -e /proc/$$/fd/$n ] && echo leaked $n >&3; done; "
                      "exit 0"},
                     plan);
  write_end.reset();
  EXPECT_OK(probe.setup);
  EXPECT_EQ(probe.exitcode, 0);
  EXPECT_EQ(ReadUntilEof(read_end.get()), "three\n");
}

TEST(VforkExecTest, TheParentsSignalHandlersAndMaskAreItsOwn) {
  // The child resets every handler and unblocks everything in shared
  // memory; our handler table and mask must not change.
  struct sigaction handler = {};
  handler.sa_handler = [](int) {};
  struct sigaction old_usr1;
  ASSERT_EQ(::sigaction(SIGUSR1, &handler, &old_usr1), 0);
  sigset_t blocked, old_mask;
  sigemptyset(&blocked);
  sigaddset(&blocked, SIGHUP);
  ASSERT_EQ(::sigprocmask(SIG_BLOCK, &blocked, &old_mask), 0);

  // And the child starts with nothing blocked. The program reads its own
  // mask: a shell reading its own would race with the shell blocking
  // every signal around its fork of the reader (dash does).
  Launch clean = VforkRun({"/bin/grep", "-q", "^SigBlk:[[:space:]]*0*$", "/proc/self/status"});
  struct sigaction now;
  ASSERT_EQ(::sigaction(SIGUSR1, nullptr, &now), 0);
  sigset_t mask_now;
  ASSERT_EQ(::sigprocmask(SIG_SETMASK, nullptr, &mask_now), 0);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  EXPECT_OK(clean.setup);
  EXPECT_EQ(clean.exitcode, 0);
  EXPECT_EQ(now.sa_handler, handler.sa_handler);
  EXPECT_TRUE(sigismember(&mask_now, SIGHUP));
  EXPECT_FALSE(sigismember(&mask_now, SIGUSR1));
}

TEST(VforkExecTest, ManyLaunchesLeaveNoDescriptorBehind) {
  const std::vector<int> before = testing::OpenFds(::getpid());
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(VforkRun({"/bin/true"}).exitcode, 0);
    EXPECT_EQ(VforkRun({"/bin/true"}, {}, "/no/such/dir").exitcode,
              kChildSetupFailedExitCode);
  }
  EXPECT_EQ(testing::OpenFds(::getpid()), before);
}

TEST(VforkExecTest, EntryModeIsRefused) {
  ChildSetupPlan plan;  // No exec_path.
  EXPECT_THAT(VforkExecChild(plan).status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace forkserver
