// Sandboxed entry mode: Process and Pool workers with a sandbox policy,
// over the `forkserver` start method (the template is a fork of this
// binary's preloaded fork server; the worker runs its entry in the
// sandbox and talks back only through the fds it was given). Each check
// would fail without its step: the same probe run without a sandbox is
// the contrast (it sees the host's processes, /etc, its capabilities).
// `fork` and `spawn` with a sandbox are clear errors.

#include <fcntl.h>
#include <sys/wait.h>
#include <poll.h>
#include <signal.h>
#include <sys/personality.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <memory>
#include <utility>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/policy_parser.h"
#include "google/protobuf/text_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/fork_server_client.h"
#include "lib/forkserver.h"
#include "tests/sandbox/sandbox_test_util.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::testing::HasSubstr;
namespace st = ::forkserver::sandbox::testing;

// Set by a preload, so only in the fork server and what forks from it.
int g_preloaded = 0;
FORKSERVER_PRELOAD(SetPreloaded) {
  g_preloaded = 42;
  return absl::OkStatus();
}

int CountProcesses() {
  int count = 0;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return -1;
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9') ++count;
  }
  ::closedir(dir);
  return count;
}

std::string CapEff() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "CapEff:")) return std::string(absl::StripAsciiWhitespace(line.substr(7)));
  }
  return "unknown";
}

// Its open descriptors, but the one listing them.
std::string OpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return "unknown";
  std::vector<int> fds;
  while (dirent* e = ::readdir(dir)) {
    int fd = 0;
    if (e->d_name[0] != '.' && absl::SimpleAtoi(e->d_name, &fd) && fd != ::dirfd(dir)) {
      fds.push_back(fd);
    }
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return absl::StrJoin(fds, ",");
}

std::string ErrnoOf(int result) { return result >= 0 ? "ok" : std::strerror(errno); }

// What the worker sees, one word per check, so a failure names the check.
std::string Observe() {
  const int fd = ::open("/etc/passwd", O_RDONLY | O_CLOEXEC);
  const std::string passwd = ErrnoOf(fd);
  if (fd >= 0) ::close(fd);
  return absl::StrCat("pid=", ::getpid(), " procs=", CountProcesses(), " passwd=", passwd,
                      " personality=", ErrnoOf(::personality(0xffffffff)),
                      " capeff=", CapEff(), " fds=", OpenFds(), " preloaded=", g_preloaded);
}

// Writes what it observed to fd 3, its channel to the client.
FORKSERVER_ENTRY(ObserveEntry, absl::string_view) {
  const std::string seen = Observe();
  return ::write(3, seen.data(), seen.size()) == static_cast<ssize_t>(seen.size()) ? 0 : 1;
}

// Writes its argument's size to fd 3.
FORKSERVER_ENTRY(ArgSizeEntry, absl::string_view arg) {
  const std::string size = absl::StrCat(arg.size(), ":", arg.substr(0, 3));
  return ::write(3, size.data(), size.size()) == static_cast<ssize_t>(size.size()) ? 0 : 1;
}

// Says it runs (a byte on fd 3), then waits to be signalled.
FORKSERVER_ENTRY(WaitForSignalEntry, absl::string_view) {
  if (::write(3, "r", 1) != 1) return 1;
  absl::SleepFor(absl::Seconds(120));
  return 0;
}

// Allocates and touches `arg` MiB, then exits 0.
FORKSERVER_ENTRY(AllocateEntry, absl::string_view arg) {
  int mib = 0;
  if (!absl::SimpleAtoi(arg, &mib)) return 2;
  std::vector<std::unique_ptr<char[]>> blocks;
  for (int i = 0; i < mib; ++i) {
    blocks.emplace_back(new char[1 << 20]);
    std::memset(blocks.back().get(), 1, 1 << 20);
  }
  return 0;
}

// Forks `arg` children that wait, together, on a pipe: exits 3 when a
// fork failed with EAGAIN (the pids limit), 0 when all were made.
FORKSERVER_ENTRY(ForkManyEntry, absl::string_view arg) {
  int count = 0;
  if (!absl::SimpleAtoi(arg, &count)) return 2;
  int hold[2];
  if (::pipe(hold) != 0) return 2;
  bool refused = false;
  std::vector<pid_t> children;
  for (int i = 0; i < count && !refused; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      char byte;
      ::close(hold[1]);
      (void)::read(hold[0], &byte, 1);
      ::_exit(0);
    }
    if (pid < 0) {
      refused = errno == EAGAIN;
      if (!refused) return 2;
    } else {
      children.push_back(pid);
    }
  }
  ::close(hold[1]);
  for (pid_t pid : children) ::waitpid(pid, nullptr, 0);
  return refused ? 3 : 0;
}

absl::StatusOr<std::string> ObserveTask(const int&, TaskContext&) { return Observe(); }
FORKSERVER_REGISTER_TASK(ObserveTask);

absl::StatusOr<int> SquareTask(const int& x, TaskContext&) { return x * x; }
FORKSERVER_REGISTER_TASK(SquareTask);

absl::StatusOr<int> SleepTask(const int& ms, TaskContext&) {
  absl::SleepFor(absl::Milliseconds(ms));
  return ms;
}
FORKSERVER_REGISTER_TASK(SleepTask);

// No host filesystem at all (a tmpfs root with /proc and /tmp), every
// capability dropped, personality() denied with EPERM, a reaping pid 1.
constexpr char kPolicy[] = R"pb(
  name: "entry-test"
  namespaces {
    user { enabled: true }
    pid: true
    mount: true
    ipc: true
    uts: true
    hostname: "sandbox"
    reaping_init: true
  }
  filesystem {
    mounts { type: TMPFS target: "/tmp" }
    mounts { type: PROC target: "/proc" }
  }
  privileges {}
  seccomp {
    default_action { type: ALLOW }
    rules { syscall: "personality" action { type: ERRNO errno_value: 1 } }
  }
  limits { wall_time_ms: 60000 }
)pb";

sandbox::Policy Policy() { return st::MustParse(kPolicy); }

std::string ReadAll(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, static_cast<size_t>(n));
  return out;
}

struct Outcome {
  absl::Status status;
  std::string seen;
  int exitcode = -1000;
  std::optional<wire::ExecutionStats> stats;
};

Outcome RunObserve(std::optional<sandbox::Policy> policy,
               StartMethod method = StartMethod::kForkServer) {
  Outcome run;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    run.status = absl::InternalError("pipe2");
    return run;
  }
  ProcessOptions options;
  options.start_method = method;
  options.fds = {{pipe_fds[1], 3}};
  options.sandbox = std::move(policy);
  Process p("ObserveEntry", "", options);
  run.status = p.Start();
  ::close(pipe_fds[1]);
  if (run.status.ok()) {
    run.seen = ReadAll(pipe_fds[0]);
    run.status = p.Join(absl::Seconds(60));
    run.exitcode = p.exitcode().value_or(-1000);
    run.stats = p.execution_stats();
  }
  ::close(pipe_fds[0]);
  return run;
}

wire::StatusReply ServerStatus() {
  auto connection = internal::ConnectToForkServer();
  EXPECT_TRUE(connection.ok()) << connection.status();
  if (!connection.ok()) return {};
  wire::ClientMessage request;
  request.mutable_status();
  auto reply = connection->Request(request);
  EXPECT_TRUE(reply.ok()) << reply.status();
  return reply.ok() ? reply->message.status() : wire::StatusReply();
}

class EntryModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string reason = st::UserNamespaceUnavailableReason(); !reason.empty()) {
      GTEST_SKIP() << "user namespaces unavailable: " << reason;
    }
  }
};

TEST_F(EntryModeTest, PlainWorkerSeesTheHost) {
  // The contrast: the same entry without a sandbox.
  Outcome run = RunObserve(std::nullopt);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.exitcode, 0);
  EXPECT_THAT(run.seen, HasSubstr("passwd=ok"));
  EXPECT_THAT(run.seen, HasSubstr("personality=ok"));
  EXPECT_THAT(run.seen, HasSubstr("preloaded=42"));
  EXPECT_THAT(run.seen, ::testing::Not(HasSubstr("pid=2 ")));
  EXPECT_FALSE(run.stats.has_value());
}

TEST_F(EntryModeTest, SandboxedProcessIsIsolatedAndReportsBack) {
  Outcome run = RunObserve(Policy());
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.exitcode, 0) << run.seen;
  // Its own pid namespace, under a reaping pid 1: itself and the init.
  EXPECT_THAT(run.seen, HasSubstr("pid=2 "));
  EXPECT_THAT(run.seen, HasSubstr("procs=2 "));
  EXPECT_THAT(run.seen, HasSubstr("passwd=No such file or directory"));
  EXPECT_THAT(run.seen, HasSubstr("personality=Operation not permitted"));
  EXPECT_THAT(run.seen, HasSubstr("capeff=0000000000000000"));
  // Its channel and stdio only: nothing of the template (its socket to
  // the server) reaches the entry.
  EXPECT_THAT(run.seen, HasSubstr("fds=0,1,2,3 "));
  EXPECT_THAT(run.seen, HasSubstr("preloaded=42"));
  ASSERT_TRUE(run.stats.has_value());
  EXPECT_EQ(run.stats->kill_reason(), wire::KILL_REASON_NONE);
}

TEST_F(EntryModeTest, LargeArgumentTravelsInItsMemfd) {
  const std::string arg = "abc" + std::string(200'000, 'x');  // Past one packet.
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  options.fds = {{pipe_fds[1], 3}};
  options.sandbox = Policy();
  Process p("ArgSizeEntry", arg, options);
  absl::Status started = p.Start();
  ::close(pipe_fds[1]);
  ASSERT_TRUE(started.ok()) << started;
  EXPECT_EQ(ReadAll(pipe_fds[0]), absl::StrCat(arg.size(), ":abc"));
  ::close(pipe_fds[0]);
  ASSERT_TRUE(p.Join(absl::Seconds(60)).ok());
  EXPECT_EQ(p.exitcode(), 0);
}

// Without a reaping init the worker is pid 1 of its namespace, which the
// kernel shields from unhandled signals; with one, the init forwards.
// Either way Terminate() ends it (exit code 128 + SIGTERM).
TEST_F(EntryModeTest, TerminateEndsASandboxedWorker) {
  for (bool init : {false, true}) {
    SCOPED_TRACE(init ? "reaping init" : "worker is pid 1");
    sandbox::Policy policy = Policy();
    policy.mutable_namespaces()->set_reaping_init(init);
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    ProcessOptions options;
    options.start_method = StartMethod::kForkServer;
    options.fds = {{pipe_fds[1], 3}};
    options.sandbox = policy;
    Process p("WaitForSignalEntry", "", options);
    absl::Status started = p.Start();
    ::close(pipe_fds[1]);
    ASSERT_TRUE(started.ok()) << started;
    char byte = 0;
    ASSERT_EQ(::read(pipe_fds[0], &byte, 1), 1);
    ::close(pipe_fds[0]);
    ASSERT_TRUE(p.Terminate().ok());
    ASSERT_TRUE(p.Join(absl::Seconds(20)).ok()) << "SIGTERM did not reach the worker";
    EXPECT_EQ(p.exitcode(), 128 + SIGTERM);
  }
}

TEST_F(EntryModeTest, BadPolicyAndUnknownEntry) {
  sandbox::Policy bad = Policy();
  bad.mutable_namespaces()->set_pid(false);  // reaping_init needs pid.
  Outcome run = RunObserve(bad);
  EXPECT_TRUE(absl::IsInvalidArgument(run.status)) << run.status;
  EXPECT_THAT(run.status.message(), HasSubstr("reaping_init"));

  ProcessOptions options;
  options.sandbox = Policy();
  Process unknown("NoSuchEntry", "", options);
  EXPECT_TRUE(absl::IsNotFound(unknown.Start()));
}

TEST_F(EntryModeTest, ForkAndSpawnRefuseASandbox) {
  for (StartMethod method : {StartMethod::kFork, StartMethod::kSpawn}) {
    Outcome run = RunObserve(Policy(), method);
    EXPECT_TRUE(absl::IsFailedPrecondition(run.status)) << run.status;
    EXPECT_THAT(run.status.message(), HasSubstr("needs the 'forkserver' start method"));
  }
  PoolOptions options;
  options.processes = 1;
  options.start_method = StartMethod::kFork;
  options.sandbox = Policy();
  auto pool = Pool::Create(options);
  EXPECT_TRUE(absl::IsFailedPrecondition(pool.status())) << pool.status();
}

TEST_F(EntryModeTest, SandboxedPoolRunsMapAndApply) {
  PoolOptions options;
  options.processes = 2;
  options.start_method = StartMethod::kForkServer;
  options.sandbox = Policy();
  auto pool = Pool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  auto squares = (*pool)->Map<int>("SquareTask", std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8});
  ASSERT_TRUE(squares.ok()) << squares.status();
  EXPECT_EQ(*squares, (std::vector<int>{1, 4, 9, 16, 25, 36, 49, 64}));
  auto seen = (*pool)->Apply<std::string>("ObserveTask", 0);
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_THAT(*seen, HasSubstr("pid=2 "));
  EXPECT_THAT(*seen, HasSubstr("passwd=No such file or directory"));
  EXPECT_THAT(*seen, HasSubstr("personality=Operation not permitted"));
  EXPECT_THAT(*seen, HasSubstr("capeff=0000000000000000"));
  EXPECT_THAT(*seen, HasSubstr("preloaded=42"));
  (*pool)->Close();
  EXPECT_TRUE((*pool)->Join().ok());
}

TEST_F(EntryModeTest, WorkerKilledForItsWallTimeIsLostWithTheReason) {
  sandbox::Policy policy = Policy();
  policy.mutable_limits()->set_wall_time_ms(1000);
  absl::Mutex mu;
  std::vector<std::string> reasons;
  PoolOptions options;
  options.processes = 1;
  options.start_method = StartMethod::kForkServer;
  options.sandbox = policy;
  options.lost_worker_timeout = absl::ZeroDuration();
  options.on_process_down = [&](const WorkerInfo& info) {
    absl::MutexLock lock(&mu);
    reasons.push_back(info.exit_reason);
  };
  options.log = [](absl::string_view) {};
  auto pool = Pool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  auto slept = (*pool)->Apply<int>("SleepTask", 30'000);
  ASSERT_FALSE(slept.ok());
  EXPECT_EQ(GetPoolError(slept.status()), PoolError::kWorkerLost) << slept.status();
  EXPECT_THAT(slept.status().message(), HasSubstr("signal 9 (SIGKILL)"));
  EXPECT_THAT(slept.status().message(), HasSubstr("killed by its sandbox: wall time limit"));
  EXPECT_TRUE((*pool)->Terminate().ok());
  EXPECT_TRUE((*pool)->Join().ok());
  absl::MutexLock lock(&mu);
  ASSERT_FALSE(reasons.empty());
  EXPECT_EQ(reasons.front(), "killed by its sandbox: wall time limit");
}

// The cgroup limits in entry mode, and the kill reasons they give, with
// the worker as pid 1 and under the reaping init (which reports a payload
// killed by N as exit code 128+N: the reason must survive that).
class EntryModeCgroupTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (std::string reason = st::UserNamespaceUnavailableReason(); !reason.empty()) {
      GTEST_SKIP() << "user namespaces unavailable: " << reason;
    }
    sandbox::Limits probe;
    probe.set_memory_bytes(1);
    probe.set_pids_max(1);
    if (auto manager = sandbox::CgroupManager::Create(probe); !manager.ok()) {
      GTEST_SKIP() << "no writable memory and pids cgroups here: " << manager.status();
    }
  }
  sandbox::Policy PolicyWith(const std::string& limits) {
    sandbox::Policy policy = Policy();
    policy.set_name(absl::StrCat("entry-cgroup-", GetParam() ? "init" : "pid1"));
    policy.mutable_namespaces()->set_reaping_init(GetParam());
    sandbox::Limits& wanted = *policy.mutable_limits();
    EXPECT_TRUE(google::protobuf::TextFormat::MergeFromString(limits, &wanted));
    return policy;
  }
  // Runs `entry` sandboxed by `policy`: {exitcode, its stats}.
  std::pair<int, wire::ExecutionStats> Run(const std::string& entry, const std::string& arg,
                                           const sandbox::Policy& policy) {
    ProcessOptions options;
    options.start_method = StartMethod::kForkServer;
    options.sandbox = policy;
    Process p(entry, arg, options);
    EXPECT_OK(p.Start());
    EXPECT_OK(p.Join(absl::Seconds(60)));
    return {p.exitcode().value_or(-1000), p.execution_stats().value_or(wire::ExecutionStats())};
  }
};

TEST_P(EntryModeCgroupTest, OverItsMemoryLimitAWorkerIsOomKilledAndSaysSo) {
  auto [code, stats] = Run("AllocateEntry", "256", PolicyWith("memory_bytes: 33554432"));
  // Without the memory cgroup it would allocate its 256 MiB and exit 0.
  EXPECT_TRUE(code == -SIGKILL || code == 128 + SIGKILL) << "exit " << code;
  EXPECT_EQ(stats.kill_reason(), wire::KILL_REASON_MEMORY) << stats.ShortDebugString();
  EXPECT_TRUE(stats.has_cgroup_memory_peak());
  // Within it, the same worker is fine.
  auto [small_code, small_stats] = Run("AllocateEntry", "4", PolicyWith("memory_bytes: 33554432"));
  EXPECT_EQ(small_code, 0);
  EXPECT_EQ(small_stats.kill_reason(), wire::KILL_REASON_NONE);
}

TEST_P(EntryModeCgroupTest, AtItsPidsLimitAWorkersForkFailsAndSaysSo) {
  auto [code, stats] = Run("ForkManyEntry", "20", PolicyWith("pids_max: 5"));
  EXPECT_EQ(code, 3) << "every fork succeeded: no pids limit";
  EXPECT_EQ(stats.kill_reason(), wire::KILL_REASON_PIDS) << stats.ShortDebugString();
  auto [few_code, few_stats] = Run("ForkManyEntry", "2", PolicyWith("pids_max: 5"));
  EXPECT_EQ(few_code, 0);
  EXPECT_EQ(few_stats.kill_reason(), wire::KILL_REASON_NONE);
}

INSTANTIATE_TEST_SUITE_P(Pid1AndReapingInit, EntryModeCgroupTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return std::string(info.param ? "reaping_init" : "pid1");
                         });

TEST_F(EntryModeTest, KilledTemplateIsRebuiltForTheNextWorker) {
  sandbox::Policy policy = Policy();
  policy.set_name("rebuild-test");
  policy.mutable_namespaces()->set_hostname("rebuild");  // Its own template.
  Outcome first = RunObserve(policy);
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_EQ(first.exitcode, 0);
  Outcome reused = RunObserve(policy);
  ASSERT_TRUE(reused.status.ok()) << reused.status;
  ASSERT_TRUE(reused.stats.has_value());
  EXPECT_FALSE(reused.stats->template_built());

  pid_t template_pid = 0;
  const wire::StatusReply before = ServerStatus();
  for (const wire::TemplateInfo& t : before.templates()) {
    if (t.policy_name() == "rebuild-test") template_pid = t.pid();
  }
  ASSERT_GT(template_pid, 0);
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, template_pid, 0));
  ASSERT_GE(pidfd, 0) << std::strerror(errno);
  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0), 0);
  pollfd pfd{pidfd, POLLIN, 0};
  ASSERT_EQ(::poll(&pfd, 1, 10'000), 1) << "the template did not die";
  ::close(pidfd);

  Outcome rebuilt = RunObserve(policy);
  ASSERT_TRUE(rebuilt.status.ok()) << rebuilt.status;
  EXPECT_EQ(rebuilt.exitcode, 0);
  EXPECT_THAT(rebuilt.seen, HasSubstr("pid=2 "));
  ASSERT_TRUE(rebuilt.stats.has_value());
  EXPECT_TRUE(rebuilt.stats->template_built());
  const wire::StatusReply after = ServerStatus();
  for (const wire::TemplateInfo& t : after.templates()) {
    if (t.policy_name() == "rebuild-test") {
      EXPECT_NE(t.pid(), template_pid);
    }
  }
}

}  // namespace
}  // namespace forkserver
