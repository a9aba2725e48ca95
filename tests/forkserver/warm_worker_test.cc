// Warm workers (forkserver/warm_pool.h): entry spawns are served by
// children forked ahead of them, which must be indistinguishable from
// children forked on request; an idle one that dies is never handed out and
// is replaced; shutdown reaps them all; 0 of them is the cold path.

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_util.h"

extern char** environ;

namespace forkserver {
namespace {

using ::forkserver::testing::Eventually;
using ::forkserver::testing::MakePipe;
using ::forkserver::testing::ReadUntilEof;
using ::testing::Not;
using ::testing::Contains;

// Preloaded state, set once in the server: every worker must see it.
int g_preloaded = 0;
FORKSERVER_PRELOAD(WarmTestState) {
  g_preloaded = 4242;
  return absl::OkStatus();
}

FORKSERVER_ENTRY(WarmNoop, absl::string_view) { return 0; }

// arg "c<N>": exit N; "s<N>": die by signal N.
FORKSERVER_ENTRY(WarmEndAs, absl::string_view arg) {
  int value = 0;
  if (!absl::SimpleAtoi(arg.substr(1), &value)) return 99;
  if (arg[0] == 's') ::raise(value);
  return value;
}

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  return text;
}

// Describes, on fd 3, everything of itself a worker could tell apart: its
// descriptors (and which lost O_CLOEXEC), session and group, parent (`arg`
// is the server's pid), parent-death signal, name, signal mask and
// dispositions, preloaded state, environment, working directory.
FORKSERVER_ENTRY(WarmProbe, absl::string_view arg) {
  std::vector<std::string> lines;
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 1;
  while (dirent* entry = ::readdir(dir)) {
    int fd;
    if (absl::SimpleAtoi(entry->d_name, &fd) && fd != ::dirfd(dir)) {
      fds.push_back(fd);
    }
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  std::vector<std::string> fd_text;
  for (int fd : fds) {
    fd_text.push_back(
        absl::StrCat(fd, (::fcntl(fd, F_GETFD) & FD_CLOEXEC) ? "c" : ""));
  }
  lines.push_back(absl::StrCat("fds ", absl::StrJoin(fd_text, ",")));
  lines.push_back(absl::StrCat("session leader ", ::getsid(0) == ::getpid(),
                               " group leader ", ::getpgid(0) == ::getpid()));
  lines.push_back(absl::StrCat("parent is server ",
                               absl::StrCat(::getppid()) == arg));
  int pdeathsig = -1;
  ::prctl(PR_GET_PDEATHSIG, &pdeathsig);
  lines.push_back(absl::StrCat("pdeathsig ", pdeathsig));
  lines.push_back(absl::StrCat("comm ", ReadFileText("/proc/self/comm")));
  sigset_t mask;
  ::sigprocmask(SIG_BLOCK, nullptr, &mask);
  std::vector<int> blocked, handled;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sigismember(&mask, sig) == 1) blocked.push_back(sig);
    struct sigaction action {};
    if (::sigaction(sig, nullptr, &action) == 0 &&
        action.sa_handler != SIG_DFL) {
      handled.push_back(sig);
    }
  }
  lines.push_back(absl::StrCat("blocked ", absl::StrJoin(blocked, ",")));
  lines.push_back(absl::StrCat("not default ", absl::StrJoin(handled, ",")));
  lines.push_back(absl::StrCat("preloaded ", g_preloaded));
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) env.push_back(*e);
  std::sort(env.begin(), env.end());
  lines.push_back(absl::StrCat("env ", std::hash<std::string>()(
                                           absl::StrJoin(env, "\n"))));
  char cwd[4096] = {};
  lines.push_back(absl::StrCat("cwd ", ::getcwd(cwd, sizeof(cwd)) ? cwd : "?"));
  return testing::WriteAll(3, absl::StrJoin(lines, "\n")) ? 0 : 1;
}

// Makes the next server keep `warm` warm workers (stopping one that keeps
// another number) and waits until its pool is full.
absl::StatusOr<ForkServerInfo> ServerWithWarmPoolFull(int warm) {
  ForkServerOptions options = GetForkServerOptions();
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  if (!info.ok()) return info;
  if (options.warm_workers != warm || info->warm_target != warm) {
    options.warm_workers = warm;
    SetForkServerOptions(options);
    if (absl::Status stopped = StopForkServer(); !stopped.ok()) return stopped;
  }
  Eventually([&] {
    info = GetForkServerInfo();
    return !info.ok() || info->warm_ready == info->warm_target;
  });
  return info;
}

class WarmWorkerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Leave the default (2) for whatever runs next.
    ASSERT_OK(ServerWithWarmPoolFull(2).status());
  }
};

// Runs WarmProbe with `options` (fd 3 is the report) and returns what it
// said.
std::string Probe(pid_t server_pid, ProcessOptions options = {}) {
  auto [read_end, write_end] = MakePipe();
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  options.start_method = StartMethod::kForkServer;
  options.name = "warm-probe";
  options.fds = {{write_end.get(), 3}, {devnull.get(), 9}};
  Process process("WarmProbe", absl::StrCat(server_pid), options);
  if (absl::Status started = process.Start(); !started.ok()) {
    return started.ToString();
  }
  write_end.reset();
  std::string report = ReadUntilEof(read_end.get());
  if (!process.Join(absl::Seconds(30)).ok() || process.exitcode() != 0) {
    return "probe failed";
  }
  return report;
}

TEST_F(WarmWorkerTest, EntrySpawnsAreServedByWarmChildren) {
  absl::StatusOr<ForkServerInfo> info = ServerWithWarmPoolFull(2);
  ASSERT_OK(info.status());
  ASSERT_EQ(info->warm_target, 2);
  ASSERT_EQ(info->warm_pids.size(), 2u);
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<ForkServerInfo> before = ServerWithWarmPoolFull(2);
    ASSERT_OK(before.status());
    Process process("WarmNoop", "", ProcessOptions{});
    ASSERT_OK(process.Start());
    // It is one of the children that were ready, not a new fork.
    EXPECT_THAT(before->warm_pids, Contains(process.pid()));
    ASSERT_OK(process.Join(absl::Seconds(30)));
    EXPECT_EQ(process.exitcode(), 0);
    absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
    ASSERT_OK(after.status());
    EXPECT_EQ(after->warm_hits, before->warm_hits + 1);
    EXPECT_EQ(after->spawned_total, before->spawned_total + 1);
  }
}

TEST_F(WarmWorkerTest, WarmAndColdWorkersAreIndistinguishable) {
  absl::StatusOr<ForkServerInfo> warm = ServerWithWarmPoolFull(2);
  ASSERT_OK(warm.status());
  const std::string warm_report = Probe(warm->pid);
  absl::StatusOr<ForkServerInfo> warm_after = GetForkServerInfo();
  ASSERT_OK(warm_after.status());
  ASSERT_EQ(warm_after->warm_hits, warm->warm_hits + 1) << "not served warm";

  absl::StatusOr<ForkServerInfo> cold = ServerWithWarmPoolFull(0);
  ASSERT_OK(cold.status());
  ASSERT_NE(cold->pid, warm->pid);
  const std::string cold_report = Probe(cold->pid);
  absl::StatusOr<ForkServerInfo> cold_after = GetForkServerInfo();
  ASSERT_OK(cold_after.status());
  EXPECT_EQ(cold_after->warm_hits, 0);

  EXPECT_EQ(warm_report, cold_report);
  // And what both are: exactly the descriptors given, their own session,
  // the server as parent, SIGKILL when it dies, the name asked for, a
  // clean signal state, the preloaded state.
  EXPECT_THAT(cold_report, ::testing::HasSubstr("fds 0,1,2,3,9\n"));
  EXPECT_THAT(cold_report,
              ::testing::HasSubstr("session leader 1 group leader 1\n"));
  EXPECT_THAT(cold_report, ::testing::HasSubstr("parent is server 1\n"));
  EXPECT_THAT(cold_report,
              ::testing::HasSubstr(absl::StrCat("pdeathsig ", SIGKILL, "\n")));
  EXPECT_THAT(cold_report, ::testing::HasSubstr("comm warm-probe\n"));
  EXPECT_THAT(cold_report, ::testing::HasSubstr("blocked \n"));
  EXPECT_THAT(cold_report, ::testing::HasSubstr("not default \n"));
  EXPECT_THAT(cold_report, ::testing::HasSubstr("preloaded 4242\n"));
}

// A request that came after a warm child was forked must not leak into it:
// the descriptors the server held for other clients at that time (a
// running worker's pipe here) are not the warm child's.
TEST_F(WarmWorkerTest, WarmChildHoldsNothingOfOtherRequests) {
  ASSERT_OK(ServerWithWarmPoolFull(2).status());
  // Worker A runs with a pipe at 3 while the pool is refilled behind it.
  auto [a_read, a_write] = MakePipe();
  ProcessOptions a_options;
  a_options.fds = {{a_write.get(), 3}};
  Process a("WarmProbe", "0", a_options);
  ASSERT_OK(a.Start());
  a_write.reset();
  EXPECT_THAT(ReadUntilEof(a_read.get()), ::testing::HasSubstr("fds 0,1,2,3\n"));
  ASSERT_OK(a.Join(absl::Seconds(30)));
  absl::StatusOr<ForkServerInfo> info = ServerWithWarmPoolFull(2);
  ASSERT_OK(info.status());
  // Each warm child, once through its first half of setup (right after
  // its fork, as a cold child's close_fds): 0, 1, 2 and its channel.
  for (pid_t pid : info->warm_pids) {
    EXPECT_TRUE(Eventually([&] { return testing::OpenFds(pid).size() <= 4; }))
        << "warm child " << pid;
    const std::vector<int> fds = testing::OpenFds(pid);
    ASSERT_EQ(fds.size(), 4u) << "warm child " << pid;
    EXPECT_EQ(fds[0], 0);
    EXPECT_EQ(fds[1], 1);
    EXPECT_EQ(fds[2], 2);
    char target[64] = {};
    ASSERT_GT(::readlink(absl::StrCat("/proc/", pid, "/fd/", fds[3]).c_str(),
                         target, sizeof(target) - 1), 0);
    EXPECT_THAT(std::string(target), ::testing::StartsWith("socket:"));
  }
}

TEST_F(WarmWorkerTest, IdleWarmChildKilledIsReplacedNeverHandedOut) {
  absl::StatusOr<ForkServerInfo> info = ServerWithWarmPoolFull(2);
  ASSERT_OK(info.status());
  for (bool wait_for_replacement : {true, false}) {
    SCOPED_TRACE(wait_for_replacement ? "after its replacement"
                                      : "before it is even reaped");
    absl::StatusOr<ForkServerInfo> before = ServerWithWarmPoolFull(2);
    ASSERT_OK(before.status());
    // Both idle ones die; the next request must still get a worker.
    std::vector<pid_t> killed = before->warm_pids;
    for (pid_t pid : killed) {
      UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
      ASSERT_TRUE(pidfd.valid());
      ASSERT_EQ(::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL,
                          nullptr, 0),
                0);
      pollfd ready{pidfd.get(), POLLIN, 0};
      ASSERT_EQ(::poll(&ready, 1, 10'000), 1);
    }
    if (wait_for_replacement) {
      ASSERT_TRUE(Eventually([&] {
        absl::StatusOr<ForkServerInfo> now = GetForkServerInfo();
        return now.ok() && now->warm_idle_deaths >= before->warm_idle_deaths + 2 &&
               now->warm_ready == 2;
      }));
    }
    Process process("WarmNoop", "", ProcessOptions{});
    ASSERT_OK(process.Start());
    for (pid_t pid : killed) EXPECT_NE(process.pid(), pid);
    ASSERT_OK(process.Join(absl::Seconds(30)));
    EXPECT_EQ(process.exitcode(), 0);
    absl::StatusOr<ForkServerInfo> after = ServerWithWarmPoolFull(2);
    ASSERT_OK(after.status());
    EXPECT_EQ(after->pid, before->pid);
    EXPECT_EQ(after->warm_idle_deaths, before->warm_idle_deaths + 2);
    for (pid_t pid : killed) EXPECT_THAT(after->warm_pids, Not(Contains(pid)));
  }
}

TEST_F(WarmWorkerTest, ZeroWarmWorkersIsTheColdPath) {
  absl::StatusOr<ForkServerInfo> info = ServerWithWarmPoolFull(0);
  ASSERT_OK(info.status());
  EXPECT_EQ(info->warm_target, 0);
  EXPECT_EQ(info->warm_ready, 0);
  EXPECT_TRUE(info->warm_pids.empty());
  for (int i = 0; i < 5; ++i) {
    Process process("WarmNoop", "", ProcessOptions{});
    ASSERT_OK(process.Start());
    ASSERT_OK(process.Join(absl::Seconds(30)));
    EXPECT_EQ(process.exitcode(), 0);
  }
  absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
  ASSERT_OK(after.status());
  EXPECT_EQ(after->warm_hits, 0);
  EXPECT_EQ(after->spawned_total, info->spawned_total + 5);
}

// What a warm child cannot serve is forked cold, unchanged: a large
// argument (a memfd) here.
TEST_F(WarmWorkerTest, LargeArgumentGoesCold) {
  absl::StatusOr<ForkServerInfo> before = ServerWithWarmPoolFull(2);
  ASSERT_OK(before.status());
  Process process("WarmNoop", std::string(200 * 1024, 'x'), ProcessOptions{});
  ASSERT_OK(process.Start());
  EXPECT_THAT(before->warm_pids, Not(Contains(process.pid())));
  ASSERT_OK(process.Join(absl::Seconds(30)));
  EXPECT_EQ(process.exitcode(), 0);
  absl::StatusOr<ForkServerInfo> after = GetForkServerInfo();
  ASSERT_OK(after.status());
  EXPECT_EQ(after->warm_hits, before->warm_hits);
}

// The zombie and descriptor-leak checks, with warm workers serving: every
// worker reaped with its true status, nothing left in the server's table.
TEST_F(WarmWorkerTest, ManyWarmWorkersNoZombiesNoDescriptorDrift) {
  absl::StatusOr<ForkServerInfo> before = ServerWithWarmPoolFull(2);
  ASSERT_OK(before.status());
  const std::vector<int> signals = testing::FatalSignalsForTests();
  int64_t served_warm = 0;
  for (int i = 0; i < 60; ++i) {
    // Every third start waits for the pool: those are certainly warm.
    if (i % 3 == 0) {
      absl::StatusOr<ForkServerInfo> full = ServerWithWarmPoolFull(2);
      ASSERT_OK(full.status());
    }
    const bool by_signal = i % 2 == 0;
    const int sig = signals[i % signals.size()];
    Process process("WarmEndAs",
                    by_signal ? absl::StrCat("s", sig) : absl::StrCat("c", i),
                    ProcessOptions{});
    ASSERT_OK(process.Start());
    ASSERT_OK(process.Join(absl::Seconds(30)));
    EXPECT_EQ(process.exitcode(), by_signal ? -sig : i) << "worker " << i;
  }
  absl::StatusOr<ForkServerInfo> after = ServerWithWarmPoolFull(2);
  ASSERT_OK(after.status());
  served_warm = after->warm_hits - before->warm_hits;
  EXPECT_GE(served_warm, 20);
  EXPECT_EQ(after->pid, before->pid);
  EXPECT_EQ(after->live_children, 0);
  EXPECT_EQ(after->open_fds, before->open_fds);
  EXPECT_EQ(after->spawned_total, before->spawned_total + 60);
  EXPECT_TRUE(testing::ZombieChildrenOf(after->pid).empty());
}

TEST_F(WarmWorkerTest, ForkserverctlStatusShowsWarmWorkers) {
  ASSERT_OK(ServerWithWarmPoolFull(2).status());
  Process process("WarmNoop", "", ProcessOptions{});
  ASSERT_OK(process.Start());
  ASSERT_OK(process.Join(absl::Seconds(30)));
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  ASSERT_OK(info.status());
  ASSERT_GE(info->warm_hits, 1);
  absl::StatusOr<testing::Output> status = testing::RunProgram(
      testing::RunfilesPath("tools/forkserverctl"),
      {absl::StrCat("--socket=", info->socket_path), "status"});
  ASSERT_OK(status.status());
  EXPECT_EQ(status->exit_code, 0);
  EXPECT_THAT(status->stdout_text, ::testing::HasSubstr("/2 ready\n"));
  EXPECT_THAT(status->stdout_text,
              ::testing::HasSubstr(absl::StrCat("warm hits ", info->warm_hits,
                                                "\n")));
}

TEST_F(WarmWorkerTest, ShutdownReapsEveryWarmChild) {
  absl::StatusOr<ForkServerInfo> info = ServerWithWarmPoolFull(2);
  ASSERT_OK(info.status());
  std::vector<UniqueFd> pidfds;
  for (pid_t pid : info->warm_pids) {
    pidfds.emplace_back(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    ASSERT_TRUE(pidfds.back().valid());
  }
  ASSERT_OK(StopForkServer(absl::Seconds(10)));
  for (const UniqueFd& pidfd : pidfds) {
    // Exited and reaped by the server before it exited: signal 0 through
    // the pidfd finds no process (a zombie would still take it).
    pollfd ready{pidfd.get(), POLLIN, 0};
    EXPECT_EQ(::poll(&ready, 1, 10'000), 1);
    EXPECT_NE(::syscall(SYS_pidfd_send_signal, pidfd.get(), 0, nullptr, 0), 0);
    EXPECT_EQ(errno, ESRCH);
  }
}

}  // namespace
}  // namespace forkserver
