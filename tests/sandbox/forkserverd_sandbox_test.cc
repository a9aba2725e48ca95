// Sandboxed launches through the real forkserverd, as RemoteCommand and
// forkserverctl users get them: template zygotes, isolation, kill
// reasons, bad profiles, a template killed and rebuilt, and no fds or
// zombies left over 1,000 launches. Each check would fail without its
// step (the plain, unsandboxed run of the same command is the contrast).

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>
#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/numbers.h"
#include "forkserver/listener.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/policy_parser.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/client/fork_server_client.h"
#include "lib/client/remote_command.h"
#include "lib/ipc/seqpacket.h"
#include "tests/sandbox/sandbox_test_util.h"
#include "tests/support/forkserverd.h"
#include "tests/support/lingering_socket.h"
#include "tests/support/raw_client.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace st = ::forkserver::sandbox::testing;

struct Outcome {
  absl::Status status;
  int exitcode = 0;
  std::string out;
  std::optional<wire::ExecutionStats> stats;
};

std::string ReadAll(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  return out;
}

class ForkserverdSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string reason = st::UserNamespaceUnavailableReason(); !reason.empty()) {
      GTEST_SKIP() << "user namespaces unavailable: " << reason;
    }
    absl::StatusOr<std::string> dir = ::forkserver::testing::MakeTestDirectory();
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *dir;
    socket_ = dir_ + "/run/socket";
    // Started, as from a login shell, under a soft descriptor limit below
    // the hard one: the daemon raises its own, its children get this back.
    testing::ForkserverdStart how;
    rlimit lowered{};
    ::getrlimit(RLIMIT_NOFILE, &lowered);
    if (lowered.rlim_max == RLIM_INFINITY || lowered.rlim_max > kDaemonSoftFdLimit) {
      lowered.rlim_cur = kDaemonSoftFdLimit;
      how.nofile = lowered;
    }
    auto daemon = testing::StartForkserverd(socket_, how);
    ASSERT_TRUE(daemon.ok()) << daemon.status();
    daemon_ = *std::move(daemon);
    auto profile = sandbox::LoadPolicyFile(st::ProfilePath("build_action"));
    ASSERT_TRUE(profile.ok()) << profile.status();
    build_action_ = *profile;
    // The probe is the payload, not the code under test: under ASan its
    // leak checker ptraces itself at exit, which the profiles deny.
    sandbox::EnvVar& asan = *build_action_.mutable_process()->add_env();
    asan.set_name("ASAN_OPTIONS");
    asan.set_value("detect_leaks=0");
    // A payload that hangs fails its test instead of timing it out.
    build_action_.mutable_limits()->set_wall_time_ms(60'000);
  }
  void TearDown() override {
    daemon_.reset();
    ::unlink(socket_.c_str());
    ::rmdir((dir_ + "/run").c_str());
    ::rmdir(dir_.c_str());
  }

  Outcome Launch(const std::optional<sandbox::Policy>& policy, std::vector<std::string> argv,
             const std::string& text = "") {
    Outcome run;
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      run.status = absl::InternalError("pipe");
      return run;
    }
    CommandSpec spec;
    spec.argv = std::move(argv);
    spec.fds = {{0, 0}, {pipe_fds[1], 1}, {2, 2}};
    spec.policy = policy;
    spec.policy_text = text;
    absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
    ::close(pipe_fds[1]);
    if (!command.ok()) {
      ::close(pipe_fds[0]);
      run.status = command.status();
      return run;
    }
    run.out = ReadAll(pipe_fds[0]);
    ::close(pipe_fds[0]);
    absl::StatusOr<int> code = command->Wait();
    run.status = code.status();
    if (code.ok()) run.exitcode = *code;
    run.stats = command->stats();
    return run;
  }

  wire::StatusReply Status() {
    auto connection = internal::ConnectToSocket(socket_);
    EXPECT_TRUE(connection.ok());
    wire::ClientMessage request;
    request.mutable_status();
    auto reply = connection->Request(request);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.ok() ? reply->message.status() : wire::StatusReply();
  }

  static constexpr rlim_t kDaemonSoftFdLimit = 1000;
  std::string dir_, socket_;
  std::unique_ptr<testing::Background> daemon_;
  sandbox::Policy build_action_;
};

// What the child sees, one word per check, so a failure names the check.
constexpr char kViewChecks[] =
    "echo pid1=$( [ $$ = 1 ] && echo y);"
    "echo procs=$(ls /proc | grep -c '^[0-9]');"
    "echo host=$(cat /proc/sys/kernel/hostname);"
    "echo ro=$(touch /etc/forkserver-x 2>&1 | grep -c 'Read-only file system');"
    "echo tmp=$(ls -A /tmp | wc -l); touch /tmp/mine;"
    "echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ,)";

TEST_F(ForkserverdSandboxTest, ChildSeesOnlyItsOwnView) {
  sandbox::Policy policy = build_action_;
  policy.mutable_namespaces()->set_net(true);
  for (int i = 0; i < 2; ++i) {  // The second child still gets an empty /tmp.
    Outcome run = Launch(policy, {"/bin/sh", "-c", kViewChecks});
    ASSERT_TRUE(run.status.ok()) << run.status;
    EXPECT_EQ(run.exitcode, 0);
    EXPECT_THAT(run.out, HasSubstr("pid1=y\n"));
    // sh, its $(...) subshell and ls: nothing of the host's.
    int procs = 0;
    for (absl::string_view line : absl::StrSplit(run.out, '\n')) {
      if (absl::ConsumePrefix(&line, "procs=")) {
        ASSERT_TRUE(absl::SimpleAtoi(line, &procs));
      }
    }
    EXPECT_GE(procs, 1);
    EXPECT_LE(procs, 4) << run.out;
    EXPECT_THAT(run.out, HasSubstr("host=sandbox\n"));
    EXPECT_THAT(run.out, HasSubstr("ro=1\n"));
    EXPECT_THAT(run.out, HasSubstr("tmp=0\n"));
    EXPECT_THAT(run.out, HasSubstr("ifaces=lo,\n"));
    ASSERT_TRUE(run.stats.has_value());
    EXPECT_EQ(run.stats->kill_reason(), wire::KILL_REASON_NONE);
    EXPECT_GT(run.stats->wall_usec(), 0);
    EXPECT_GT(run.stats->setup_usec(), 0);
    EXPECT_EQ(run.stats->template_built(), i == 0);
  }
  EXPECT_NE(::access("/etc/forkserver-x", F_OK), 0);
  // The contrast: unsandboxed, the same shell sees the host.
  Outcome plain = Launch(std::nullopt, {"/bin/sh", "-c", "echo pid1=$( [ $$ = 1 ] && echo y)"});
  EXPECT_THAT(plain.out, HasSubstr("pid1=\n"));
  EXPECT_FALSE(plain.stats.has_value());
}

// The daemon raised its own soft descriptor limit; a sandboxed program
// gets back the one the daemon was started with, unless its profile sets
// its own (build_action: 1024).
TEST_F(ForkserverdSandboxTest, ProgramsGetTheDaemonsStartingSoftFdLimitOrTheProfiles) {
  rlimit ours{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &ours), 0);
  if (ours.rlim_max != RLIM_INFINITY && ours.rlim_max <= kDaemonSoftFdLimit) {
    GTEST_SKIP() << "hard RLIMIT_NOFILE " << ours.rlim_max << " leaves no room below it";
  }
  sandbox::Policy no_rlimits = build_action_;
  no_rlimits.clear_rlimits();
  Outcome inherited = Launch(no_rlimits, {"/bin/sh", "-c", "ulimit -Sn"});
  ASSERT_TRUE(inherited.status.ok()) << inherited.status;
  EXPECT_EQ(inherited.out, absl::StrCat(kDaemonSoftFdLimit, "\n"));
  Outcome profiles = Launch(build_action_, {"/bin/sh", "-c", "ulimit -Sn; ulimit -Hn"});
  ASSERT_TRUE(profiles.status.ok()) << profiles.status;
  EXPECT_EQ(profiles.out, "1024\n4096\n");
}

// Past 48 KiB a client sends argv and env in a memfd; the sandboxed path
// used to ignore it and run the program with neither (exit 0, silently).
// 50 KiB still fits one packet to the template; 200 KiB goes to it in the
// server's own memfd.
TEST_F(ForkserverdSandboxTest, LargeArgumentsAndEnvironmentReachASandboxedProgram) {
  for (const int kib : {50, 200}) {
    auto [read_end, write_end] = testing::MakePipe();
    CommandSpec spec;
    spec.argv = {"/bin/sh", "-c", "echo $# ${#BIG} $MARK", "sh"};
    const int args = kib / 2;
    for (int i = 0; i < args; ++i) spec.argv.push_back(std::string(1000, 'a' + i % 26));
    spec.env = std::vector<std::string>{"PATH=/usr/bin:/bin", "MARK=set",
                                        absl::StrCat("BIG=", std::string(args * 1000, 'x'))};
    spec.fds = {{0, 0}, {write_end.get(), 1}, {2, 2}};
    spec.policy = build_action_;
    absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
    ASSERT_TRUE(command.ok()) << command.status();
    write_end.reset();
    EXPECT_EQ(testing::ReadUntilEof(read_end.get()), absl::StrCat(args, " ", args * 1000, " set\n"))
        << kib << " KiB";
    absl::StatusOr<int> code = command->Wait();
    ASSERT_TRUE(code.ok()) << code.status();
    EXPECT_EQ(*code, 0);
  }
}

// Arguments the kernel refuses (E2BIG: 8 MiB of argv, past its limit)
// are the request's fault: INVALID_ARGUMENT naming the execve step, as for
// a plain launch; it was INTERNAL when sandboxed (outside attack).
TEST_F(ForkserverdSandboxTest, ArgumentsTheKernelRefusesAreTheRequestsFault) {
  CommandSpec spec;
  spec.argv = {"/bin/true"};
  for (int i = 0; i < 80; ++i) spec.argv.push_back(std::string(100 * 1024, 'a'));
  spec.policy = build_action_;
  absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
  EXPECT_TRUE(absl::IsInvalidArgument(command.status())) << command.status();
  EXPECT_THAT(std::string(command.status().message()), HasSubstr("execve"));
}

// A disconnect does to a sandboxed child what it does to a plain one
// (outside attack: it did the opposite). Once the client has the pid, it
// lives on unless kill_on_disconnect; before, nobody could ever wait for
// it, so it is killed; and survive_server, which a child of a template
// cannot honour, is refused.
TEST_F(ForkserverdSandboxTest, ADisconnectEndsASandboxedChildExactlyAsAPlainOne) {
  // A write to a killed child's stdin fails (EPIPE) instead of ending us.
  ::signal(SIGPIPE, SIG_IGN);
  for (const bool kill_on_disconnect : {false, true}) {
    auto [in_read, in_write] = testing::MakePipe();
    auto [out_read, out_write] = testing::MakePipe();
    CommandSpec spec;
    spec.argv = {"/bin/sh", "-c", "read line; echo alive"};
    spec.fds = {{in_read.get(), 0}, {out_write.get(), 1}, {2, 2}};
    spec.kill_on_disconnect = kill_on_disconnect;
    spec.policy = build_action_;
    UniqueFd child;
    {
      absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket_, spec);
      ASSERT_TRUE(command.ok()) << command.status();
      child.reset(::fcntl(command->sentinel(), F_DUPFD_CLOEXEC, 3));
      in_read.reset();
      out_write.reset();
    }  // The client's connection closes with the child running.
    // Only once the server has handled that close (just the status
    // request's own connection is left) is the child told to go on.
    ASSERT_TRUE(testing::Eventually([&] { return Status().open_connections() == 1; }));
    if (kill_on_disconnect) {
      pollfd ended{child.get(), POLLIN, 0};
      EXPECT_EQ(::poll(&ended, 1, 30'000), 1) << "not killed on disconnect";
      EXPECT_EQ(testing::ReadUntilEof(out_read.get()), "");
    } else {
      ASSERT_TRUE(testing::WriteAll(in_write.get(), "go\n"));
      EXPECT_EQ(testing::ReadUntilEof(out_read.get()), "alive\n") << "killed on disconnect";
    }
  }
  // Closed right after the request: however far the launch got, no child
  // is left that nobody knows of.
  for (int i = 0; i < 5; ++i) {
    wire::ClientMessage spawn;
    wire::SpawnRequest& request = *spawn.mutable_spawn();
    request.set_kind(wire::SPAWN_KIND_EXEC);
    request.mutable_exec()->set_path("/bin/sleep");
    request.mutable_exec()->add_argv("sleep");
    request.mutable_exec()->add_argv("1000");
    *request.mutable_sandbox() = build_action_;
    // The hello answered and read: nothing unread on our side, so our
    // close is an EOF after the request, not a reset before it.
    UniqueFd socket = testing::ConnectAndHello(socket_);
    ASSERT_TRUE(SendPacket(socket.get(), spawn.SerializeAsString()).ok());
  }
  EXPECT_TRUE(testing::Eventually([&] { return Status().live_children() == 0; }))
      << Status().live_children() << " sandboxed children outlived clients that never knew them";
  wire::ClientMessage survive;
  wire::SpawnRequest& request = *survive.mutable_spawn();
  request.set_kind(wire::SPAWN_KIND_EXEC);
  request.set_survive_server(true);
  request.mutable_exec()->set_path("/bin/true");
  request.mutable_exec()->add_argv("true");
  *request.mutable_sandbox() = build_action_;
  absl::StatusOr<internal::ServerConnection> connection = internal::ConnectToSocket(socket_);
  ASSERT_TRUE(connection.ok());
  absl::StatusOr<internal::ServerReply> reply = connection->Request(survive);
  EXPECT_TRUE(absl::IsInvalidArgument(reply.status())) << reply.status();
  EXPECT_THAT(std::string(reply.status().message()), HasSubstr("survive_server"));
}

TEST_F(ForkserverdSandboxTest, DeniedSyscallIsReportedAsSeccompKill) {
  sandbox::Policy policy = build_action_;
  sandbox::Seccomp::Rule& rule = *policy.mutable_seccomp()->add_rules();
  policy.mutable_seccomp()->mutable_rules()->erase(policy.mutable_seccomp()->mutable_rules()->begin());
  rule.set_syscall("ptrace");
  rule.mutable_action()->set_type(sandbox::Seccomp::KILL_PROCESS);
  Outcome run = Launch(policy, {st::ProbePath(), "ptrace"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.exitcode, -SIGSYS);
  ASSERT_TRUE(run.stats.has_value());
  EXPECT_EQ(run.stats->kill_reason(), wire::KILL_REASON_SECCOMP);
  if (!absl::StartsWith(run.stats->seccomp_syscall(), "unknown")) {
    EXPECT_EQ(run.stats->seccomp_syscall(), "ptrace");
  } else {
    std::printf("seccomp syscall name unavailable here: %s\n", run.stats->seccomp_syscall().c_str());
  }
  // build_action's own rule: EPERM, and the child lives on.
  Outcome eperm = Launch(build_action_, {st::ProbePath(), "ptrace"});
  ASSERT_TRUE(eperm.status.ok()) << eperm.status;
  EXPECT_THAT(eperm.out, HasSubstr("ptrace=-1 errno=1"));
  EXPECT_EQ(eperm.stats->kill_reason(), wire::KILL_REASON_NONE);
}

// Under a reaping pid 1 the program's death by signal N reaches the
// template as the init's exit code 128+N: the kill reason must still be
// found (tests/sandbox:entry_mode_test does memory and pids).
TEST_F(ForkserverdSandboxTest, KillReasonsSurviveTheReapingInit) {
  sandbox::Policy policy = build_action_;
  policy.mutable_namespaces()->set_reaping_init(true);
  policy.mutable_seccomp()->mutable_rules()->erase(policy.mutable_seccomp()->mutable_rules()->begin());
  sandbox::Seccomp::Rule& rule = *policy.mutable_seccomp()->add_rules();
  rule.set_syscall("ptrace");
  rule.mutable_action()->set_type(sandbox::Seccomp::KILL_PROCESS);
  Outcome killed = Launch(policy, {st::ProbePath(), "ptrace"});
  ASSERT_TRUE(killed.status.ok()) << killed.status;
  EXPECT_EQ(killed.exitcode, 128 + SIGSYS);
  ASSERT_TRUE(killed.stats.has_value());
  EXPECT_EQ(killed.stats->kill_reason(), wire::KILL_REASON_SECCOMP);
  Outcome exited = Launch(policy, {"/bin/sh", "-c", "exit 3"});
  ASSERT_TRUE(exited.status.ok()) << exited.status;
  EXPECT_EQ(exited.exitcode, 3);
  EXPECT_EQ(exited.stats->kill_reason(), wire::KILL_REASON_NONE);
}

TEST_F(ForkserverdSandboxTest, MemoryLimitGivesOomKillReason) {
  sandbox::Limits probe;
  probe.set_memory_bytes(1);
  if (auto manager = sandbox::CgroupManager::Create(probe); !manager.ok()) {
    GTEST_SKIP() << "no writable memory cgroup here: " << manager.status();
  }
  sandbox::Policy policy = build_action_;
  policy.mutable_limits()->set_memory_bytes(32 << 20);
  Outcome run = Launch(policy, {st::ProbePath(), "alloc", "256"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.exitcode, -SIGKILL) << run.out;
  ASSERT_TRUE(run.stats.has_value());
  EXPECT_EQ(run.stats->kill_reason(), wire::KILL_REASON_MEMORY);
  EXPECT_TRUE(run.stats->has_cgroup_memory_peak());
}

TEST_F(ForkserverdSandboxTest, WallTimeLimitKillsWithThatReason) {
  sandbox::Policy policy = build_action_;
  policy.mutable_limits()->set_wall_time_ms(300);
  Outcome run = Launch(policy, {"/bin/sleep", "30"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.exitcode, -SIGKILL);
  ASSERT_TRUE(run.stats.has_value());
  EXPECT_EQ(run.stats->kill_reason(), wire::KILL_REASON_WALL_TIME);
}

TEST_F(ForkserverdSandboxTest, BadProfilesGiveClearErrors) {
  Outcome unparsable = Launch(std::nullopt, {"/bin/true"}, "namespaces {\n  pids: true\n}\n");
  EXPECT_TRUE(absl::IsInvalidArgument(unparsable.status)) << unparsable.status;
  EXPECT_THAT(unparsable.status.message(), HasSubstr(":2:"));
  Outcome no_mount_ns =
      Launch(std::nullopt, {"/bin/true"}, "filesystem { mounts { type: TMPFS target: \"/tmp\" } }");
  EXPECT_TRUE(absl::IsInvalidArgument(no_mount_ns.status)) << no_mount_ns.status;
  EXPECT_THAT(no_mount_ns.status.message(), HasSubstr("filesystem.mounts"));
  // Through forkserverctl: the file's name, line and column, exit 1.
  const std::string bad = dir_ + "/bad.textproto";
  std::ofstream(bad) << "name: \"x\"\nseccomp { default_action { type: ALLOW }\n"
                         "  rules { syscall: \"no_such_call\" action { type: ERRNO errno_value: 1 } } }\n";
  auto ctl = testing::RunProgram(
      "/bin/sh", {"-c", absl::StrCat(testing::RunfilesPath("tools/forkserverctl"),
                                     " --socket=", socket_, " run --profile=", bad,
                                     " -- /bin/true 2>&1")});
  ASSERT_TRUE(ctl.ok()) << ctl.status();
  EXPECT_EQ(ctl->exit_code, 1);
  EXPECT_THAT(ctl->stdout_text, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(ctl->stdout_text, HasSubstr("seccomp.rules[0]"));
  std::ofstream(bad) << "name: \"x\"\nnamespaces { pids: true }\n";
  ctl = testing::RunProgram(
      "/bin/sh", {"-c", absl::StrCat(testing::RunfilesPath("tools/forkserverctl"),
                                     " --socket=", socket_, " run --profile=", bad,
                                     " -- /bin/true 2>&1")});
  ASSERT_TRUE(ctl.ok()) << ctl.status();
  EXPECT_EQ(ctl->exit_code, 1);
  EXPECT_THAT(ctl->stdout_text, HasSubstr(bad + ":2:"));
  ::unlink(bad.c_str());
}

TEST_F(ForkserverdSandboxTest, ForkserverctlPassesExitCodeAndPrintsStats) {
  auto ctl = testing::RunProgram(
      "/bin/sh", {"-c", absl::StrCat(testing::RunfilesPath("tools/forkserverctl"),
                                     " --socket=", socket_, " run --profile=",
                                     st::ProfilePath("build_action"),
                                     " --stats --json -- /bin/sh -c 'exit 3' 2>&1")});
  ASSERT_TRUE(ctl.ok()) << ctl.status();
  EXPECT_EQ(ctl->exit_code, 3);
  EXPECT_THAT(ctl->stdout_text, HasSubstr("\"kill_reason\":\"none\""));
  EXPECT_THAT(ctl->stdout_text, HasSubstr("\"setup_usec\":"));
}

TEST_F(ForkserverdSandboxTest, KilledTemplateIsRebuiltAndInFlightLaunchesFail) {
  CommandSpec spec;
  spec.argv = {"/bin/sleep", "30"};
  spec.policy = build_action_;
  auto sleeper = RemoteCommand::Start(socket_, spec);
  ASSERT_TRUE(sleeper.ok()) << sleeper.status();
  wire::StatusReply status = Status();
  ASSERT_EQ(status.templates_size(), 1);
  EXPECT_EQ(status.templates(0).running(), 1);
  const pid_t first = status.templates(0).pid();
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  absl::StatusOr<int> waited = sleeper->Wait(absl::Seconds(20));
  EXPECT_TRUE(absl::IsUnavailable(waited.status())) << waited.status();
  Outcome again = Launch(build_action_, {"/bin/true"});
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.exitcode, 0);
  EXPECT_TRUE(again.stats->template_built());
  status = Status();
  ASSERT_EQ(status.templates_size(), 1);
  EXPECT_NE(status.templates(0).pid(), first);
}

// The daemon's children (the descriptor closer, templates, plain children).
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/task/", pid, "/children"));
  std::vector<pid_t> children;
  pid_t child;
  while (in >> child) children.push_back(child);
  return children;
}

// A template being built is never waited for. Caught SIGSTOPped while it
// enters (a view of many stacked mounts makes that take a while), the
// server still answers a status request, which lists it as entering; left
// stopped, it is killed after kTemplateEnterTimeout (5 s) and the launch
// waiting on it gets DEADLINE_EXCEEDED; the next launch builds a new one.
// Before, the server waited for the template in its loop, serving nobody.
TEST_F(ForkserverdSandboxTest, ATemplateStillEnteringStallsNobody) {
  bool caught = false;
  for (int attempt = 0; attempt < 5 && !caught; ++attempt) {
    sandbox::Policy slow = build_action_;
    slow.set_name("slow-to-enter");
    for (int i = 0; i < 1000 + attempt; ++i) {  // A new template key each try.
      sandbox::Mount& mount = *slow.mutable_filesystem()->add_mounts();
      mount.set_type(sandbox::Mount::TMPFS);
      mount.set_target("/mnt");
      mount.set_size_bytes(1 << 20);
    }
    const std::vector<pid_t> before = ChildrenOf(daemon_->pid());
    std::thread launcher;
    Outcome outcome;
    launcher = std::thread([&] { outcome = Launch(slow, {"/bin/true"}); });
    pid_t template_pid = 0;
    const absl::Time give_up = absl::Now() + absl::Seconds(20);
    while (template_pid == 0 && absl::Now() < give_up) {
      for (pid_t child : ChildrenOf(daemon_->pid())) {
        if (std::find(before.begin(), before.end(), child) == before.end()) {
          template_pid = child;
        }
      }
    }
    ASSERT_NE(template_pid, 0) << "no template appeared";
    ASSERT_EQ(::kill(template_pid, SIGSTOP), 0);
    // Answered while it is stopped: within 3 s, where a server waiting for
    // the template would answer only after giving up on it (5 s).
    const ForkServerOptions saved = GetForkServerOptions();
    ForkServerOptions quick = saved;
    quick.request_timeout = absl::Seconds(3);
    SetForkServerOptions(quick);
    wire::StatusReply status = Status();
    SetForkServerOptions(saved);
    bool entering = false;
    for (const wire::TemplateInfo& t : status.templates()) {
      if (t.pid() == template_pid) entering = t.entering();
    }
    if (!entering) {
      // Entered before we stopped it: let it run, and try again.
      ::kill(template_pid, SIGCONT);
      launcher.join();
      EXPECT_TRUE(outcome.status.ok()) << outcome.status;
      continue;
    }
    caught = true;
    launcher.join();  // Ends when the server gives up on the template.
    EXPECT_TRUE(absl::IsDeadlineExceeded(outcome.status)) << outcome.status;
    EXPECT_THAT(std::string(outcome.status.message()), HasSubstr("did not enter"));
    // The next launch of that policy builds a new template and runs.
    Outcome again = Launch(slow, {"/bin/true"});
    ASSERT_TRUE(again.status.ok()) << again.status;
    EXPECT_EQ(again.exitcode, 0);
    ASSERT_TRUE(again.stats.has_value());
    EXPECT_TRUE(again.stats->template_built());
  }
  EXPECT_TRUE(caught) << "a template with 1000 mounts entered before it could be stopped, 5 times";
}

// A template is shared by every client of its policy: a descriptor whose
// last close blocks must not stall it. A lingering TCP socket queued in a
// Unix socket is given as a sandboxed program's stdin, and the exec fails
// (no such program), so the template's close of it is the last one. Before
// templates had a closer of their own that close waited out the linger
// (120 s), and every later launch of the policy with it.
TEST_F(ForkserverdSandboxTest, ADescriptorWhoseCloseBlocksCannotStallATemplate) {
  Outcome first = Launch(build_action_, {"/bin/true"});  // Builds the template.
  ASSERT_TRUE(first.status.ok()) << first.status;
  wire::StatusReply status = Status();
  ASSERT_EQ(status.templates_size(), 1);
  const pid_t template_pid = status.templates(0).pid();
  auto [carrier, peer] = testing::UnixSocketQueuingALingeringOne(/*linger_seconds=*/120);
  UniqueFd connection = testing::ConnectAndHello(socket_);
  wire::ClientMessage spawn;
  wire::SpawnRequest& request = *spawn.mutable_spawn();
  request.set_kind(wire::SPAWN_KIND_EXEC);
  request.mutable_exec()->set_path("/nonexistent/program");
  request.mutable_exec()->add_argv("program");
  request.add_child_fds(0);
  *request.mutable_sandbox() = build_action_;
  // Ours must not be the last copy: the template is held stopped until
  // the request (the socket with it) is in flight, and ours is closed.
  ASSERT_EQ(::kill(template_pid, SIGSTOP), 0);
  const int passed = carrier.get();
  ASSERT_TRUE(SendPacket(connection.get(), spawn.SerializeAsString(), {&passed, 1}).ok());
  carrier.reset();
  ASSERT_EQ(::kill(template_pid, SIGCONT), 0);
  Packet reply;
  ASSERT_TRUE(ReceivePacket(connection.get(), absl::Now() + absl::Seconds(10), &reply).ok());
  wire::ServerMessage message;
  ASSERT_TRUE(message.ParseFromString(reply.bytes));
  EXPECT_TRUE(message.has_error()) << message.DebugString();
  // The template serves on.
  Outcome next = Launch(build_action_, {"/bin/true"});
  EXPECT_TRUE(next.status.ok()) << next.status << ": the template stalled on a close";
  EXPECT_EQ(next.exitcode, 0);
  status = Status();
  ASSERT_EQ(status.templates_size(), 1);
  EXPECT_EQ(status.templates(0).pid(), template_pid);
}

// profiles/default.textproto alone: seccomp, no namespaces at all. There
// is no user namespace, so no id maps or setgroups to write (writing the
// host's own failed with EPERM, found by an outside attack); the block
// list still applies.
TEST_F(ForkserverdSandboxTest, TheSeccompOnlyDefaultProfileRunsAlone) {
  auto profile = sandbox::LoadPolicyFile(st::ProfilePath("default"));
  ASSERT_TRUE(profile.ok()) << profile.status();
  Outcome run = Launch(*profile, {"/bin/sh", "-c", "unshare --user /bin/true; echo unshare=$?"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.exitcode, 0);
  EXPECT_THAT(run.out, HasSubstr("unshare=1\n"));  // EPERM from the filter.
}

// Found by an outside attack: launches forwarded to a template that has
// entered but never answers (here SIGSTOPped; a stuck one alike) waited
// for ever, and kept it from being evicted. Now one left unanswered for
// kTemplateLaunchTimeout (5 s) has its template killed, its launches get
// DEADLINE_EXCEEDED, and the next launch builds a new template.
TEST_F(ForkserverdSandboxTest, ATemplateThatNeverAnswersIsReplaced) {
  Outcome first = Launch(build_action_, {"/bin/true"});
  ASSERT_TRUE(first.status.ok()) << first.status;
  wire::StatusReply status = Status();
  ASSERT_EQ(status.templates_size(), 1);
  const pid_t stopped = status.templates(0).pid();
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  Outcome stuck = Launch(build_action_, {"/bin/true"});
  EXPECT_TRUE(absl::IsDeadlineExceeded(stuck.status)) << stuck.status;
  EXPECT_THAT(std::string(stuck.status.message()), HasSubstr("did not start a launch"));
  Outcome again = Launch(build_action_, {"/bin/true"});
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.exitcode, 0);
  ASSERT_TRUE(again.stats.has_value());
  EXPECT_TRUE(again.stats->template_built());
  status = Status();
  ASSERT_EQ(status.templates_size(), 1);
  EXPECT_NE(status.templates(0).pid(), stopped);
}

// signal_group on a sandboxed child: its template reaps it, so the
// template signals the group and SIGKILLs it when the child ends, before
// reaping. Without a pid namespace (whose end would kill everything in it
// anyway) the grandchild survived, reparented (outside attack).
TEST_F(ForkserverdSandboxTest, SignalGroupKillsASandboxedChildsGroupWhenItEnds) {
  for (const bool pid_namespace : {false, true}) {
    SCOPED_TRACE(pid_namespace ? "with a pid namespace" : "without a pid namespace");
    sandbox::Policy policy;
    policy.set_name(pid_namespace ? "group-pidns" : "group-no-pidns");
    policy.mutable_namespaces()->mutable_user()->set_enabled(true);
    policy.mutable_namespaces()->set_pid(pid_namespace);
    auto [read_end, write_end] = testing::MakePipe();
    UniqueFd connection = testing::ConnectAndHello(socket_);
    wire::ClientMessage spawn;
    wire::SpawnRequest& request = *spawn.mutable_spawn();
    request.set_kind(wire::SPAWN_KIND_EXEC);
    request.mutable_exec()->set_path("/bin/sh");
    // The grandchild ignores SIGTERM; the shell dies of it, so its death
    // shows the group signal arrived before it ended (no race with its
    // exit), and only the SIGKILL at its end can take the grandchild.
    for (const char* arg : {"sh", "-c", "(trap '' TERM; exec sleep 300) & echo $!; read x"}) {
      request.mutable_exec()->add_argv(arg);
    }
    // stdin: a pipe we keep open, so the shell waits until we close it.
    auto [stdin_read, stdin_write] = testing::MakePipe();
    request.add_child_fds(0);
    request.add_child_fds(1);
    *request.mutable_sandbox() = policy;
    const int fds[2] = {stdin_read.get(), write_end.get()};
    ASSERT_TRUE(SendPacket(connection.get(), spawn.SerializeAsString(), fds).ok());
    stdin_read.reset();
    write_end.reset();
    Packet packet;
    ASSERT_TRUE(ReceivePacket(connection.get(), absl::Now() + absl::Seconds(10), &packet).ok());
    wire::ServerMessage spawned;
    ASSERT_TRUE(spawned.ParseFromString(packet.bytes) && spawned.has_spawned())
        << spawned.DebugString();
    // The grandchild's pid, in the host's view without a pid namespace; in
    // the child's own with one (then only its disappearance is checked,
    // through the namespace's end).
    std::string line;
    char c;
    while (::read(read_end.get(), &c, 1) == 1 && c != '\n') line.push_back(c);
    pid_t grandchild = 0;
    ASSERT_TRUE(absl::SimpleAtoi(line, &grandchild)) << line;
    wire::ClientMessage signal;
    signal.mutable_signal_group()->set_signal(SIGTERM);
    ASSERT_TRUE(SendPacket(connection.get(), signal.SerializeAsString()).ok());
    // As pid 1 of its namespace the shell ignores SIGTERM (the kernel
    // drops signals an init has no handler for): it ends when its stdin
    // does, and the namespace's end takes the grandchild.
    if (pid_namespace) stdin_write.reset();
    ASSERT_TRUE(ReceivePacket(connection.get(), absl::Now() + absl::Seconds(20), &packet).ok());
    wire::ServerMessage exited;
    ASSERT_TRUE(exited.ParseFromString(packet.bytes) && exited.has_exited()) << exited.DebugString();
    if (!pid_namespace) {
      EXPECT_EQ(exited.exited().signal(), SIGTERM) << exited.DebugString();
    }
    if (!pid_namespace) {
      // SIGKILLed before the shell was reaped; reaped in turn by whoever
      // it was reparented to.
      EXPECT_TRUE(::forkserver::testing::Eventually([&] { return ::kill(grandchild, 0) != 0; }))
          << "grandchild " << grandchild << " of a sandboxed child outlived signal_group";
    }
  }
}

int CountFds(pid_t pid) {
  int count = 0;
  if (DIR* dir = ::opendir(absl::StrCat("/proc/", pid, "/fd").c_str())) {
    while (dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
    ::closedir(dir);
  }
  return count;
}

// The daemon's fd count once connections that are closing have gone (a
// finished connection lingers until its client's EOF reaches the loop):
// the count stable over 100 ms, within 10 s.
int SettledFds(pid_t pid) {
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  int last = CountFds(pid);
  absl::Time stable_since = absl::Now();
  while (absl::Now() < deadline &&
         absl::Now() - stable_since < absl::Milliseconds(100)) {
    absl::SleepFor(absl::Milliseconds(5));
    const int now = CountFds(pid);
    if (now != last) {
      last = now;
      stable_since = absl::Now();
    }
  }
  return last;
}

// Zombies whose parent is one of `parents`.
int CountZombies(const std::vector<pid_t>& parents) {
  int zombies = 0;
  DIR* dir = ::opendir("/proc");
  while (dirent* entry = ::readdir(dir)) {
    std::ifstream in(absl::StrCat("/proc/", entry->d_name, "/stat"));
    std::string line;
    if (!std::getline(in, line)) continue;
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos) continue;
    std::vector<std::string> f = absl::StrSplit(line.substr(paren + 2), ' ');
    if (f.size() < 2 || f[0] != "Z") continue;
    for (pid_t p : parents) zombies += f[1] == std::to_string(p);
  }
  ::closedir(dir);
  return zombies;
}

TEST_F(ForkserverdSandboxTest, NoFdsOrZombiesLeakOver1000Launches) {
  ASSERT_TRUE(Launch(build_action_, {"/bin/true"}).status.ok());  // Builds the template.
  const pid_t daemon = daemon_->pid();
  const pid_t templ = Status().templates(0).pid();
  const int fds_before = SettledFds(daemon);
  const int template_fds_before = CountFds(templ);
  for (int i = 0; i < 1000; ++i) {
    CommandSpec spec;
    spec.argv = {"/bin/true"};
    spec.fds = {};
    spec.policy = build_action_;
    auto command = RemoteCommand::Start(socket_, spec);
    ASSERT_TRUE(command.ok()) << i << ": " << command.status();
    auto code = command->Wait();
    ASSERT_TRUE(code.ok()) << i << ": " << code.status();
    ASSERT_EQ(*code, 0);
  }
  wire::StatusReply status = Status();
  EXPECT_EQ(status.live_children(), 0);
  ASSERT_EQ(status.templates_size(), 1);
  EXPECT_EQ(status.templates(0).pid(), templ);
  EXPECT_EQ(SettledFds(daemon), fds_before);
  EXPECT_EQ(CountFds(templ), template_fds_before);
  EXPECT_EQ(CountZombies({daemon, templ}), 0);
}

}  // namespace
}  // namespace forkserver
