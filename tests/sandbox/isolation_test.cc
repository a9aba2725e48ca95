// Isolation steps, each checked by what a real sandboxed child sees. Each
// test would fail if its step were skipped (the comments say how).
// Runs as root here; unprivileged_test.cc covers the nobody path.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "forkserver/sandbox/compiled_sandbox.h"
#include "forkserver/sandbox/launcher.h"
#include "forkserver/sandbox/policy_parser.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace forkserver {
namespace sandbox {
namespace testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The build_action shape with a chosen default map.
Policy BuildAction(const std::string& map = "DEFAULT_MAP_SELF") {
  absl::StatusOr<Policy> policy = LoadPolicyFile(ProfilePath("build_action"));
  EXPECT_TRUE(policy.ok()) << policy.status();
  Policy p = policy.ok() ? *policy : Policy();
  UserNamespace::DefaultMap value;
  UserNamespace::DefaultMap_Parse(map, &value);
  p.mutable_namespaces()->mutable_user()->set_default_map(value);
  return p;
}

class IsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string reason = UserNamespaceUnavailableReason(); !reason.empty()) {
      GTEST_SKIP() << "user namespaces unavailable: " << reason;
    }
  }
  RunOutcome Sh(const Policy& policy, const std::string& script) {
    return RunInSandbox(policy, {"/bin/sh", "-c", script});
  }
};

// Without the pid namespace (or without its own /proc) $$ is a host pid
// and /proc lists the host's processes.
TEST_F(IsolationTest, SeesOnlyItsOwnProcesses) {
  RunOutcome run = Sh(BuildAction(), "echo pid=$$; ls /proc | grep -c '^[0-9]'");
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.result.exit_code, 0);
  EXPECT_THAT(run.out, HasSubstr("pid=1\n"));
  int count = 0;
  sscanf(run.out.substr(run.out.find('\n') + 1).c_str(), "%d", &count);
  EXPECT_GE(count, 1);
  EXPECT_LE(count, 3) << run.out;  // sh, ls, grep at most.
}

// The remount step is what makes the bind read-only (MS_RDONLY is ignored
// on the first bind).
TEST_F(IsolationTest, ReadOnlyBindGivesErofs) {
  const std::string probe = absl::StrCat("/etc/forkserver-probe-", getpid());
  RunOutcome run = Sh(BuildAction(), absl::StrCat("touch ", probe, " 2>&1; true"));
  const bool leaked = access(probe.c_str(), F_OK) == 0;
  if (leaked) unlink(probe.c_str());  // Only there if the sandbox failed.
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_THAT(run.out, HasSubstr("Read-only file system"));
  EXPECT_FALSE(leaked) << probe << " was written on the host";
}

// With pivot_root skipped (or the old root kept), /var and the marker
// would be reachable.
TEST_F(IsolationTest, UnlistedHostPathIsUnreachable) {
  const std::string marker = SharedDir() + "/marker";
  std::ofstream(marker) << "host";
  Policy policy = MustParse(R"pb(
    namespaces { user { enabled: true } mount: true pid: true }
    filesystem {
      mounts { type: BIND_RO source: "/usr" target: "/usr" }
      mounts { type: SYMLINK source: "usr/bin" target: "/bin" }
      mounts { type: SYMLINK source: "usr/lib" target: "/lib" }
      mounts { type: SYMLINK source: "usr/lib64" target: "/lib64" }
      mounts { type: TMPFS target: "/tmp" }
      read_only_root: true
    }
  )pb");
  RunOutcome run = Sh(policy, absl::StrCat("ls -A /; test -e ", marker, " && echo reachable;"
                                           " test -e /var || echo no-var; touch /new 2>&1; true"));
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out.substr(0, run.out.find("no-var")), "bin\nlib\nlib64\ntmp\nusr\n");
  EXPECT_THAT(run.out, Not(HasSubstr("reachable")));
  EXPECT_THAT(run.out, HasSubstr("no-var"));
  EXPECT_THAT(run.out, HasSubstr("Read-only file system"));  // read_only_root
}

// The host's /tmp has files; a sandbox's /tmp is an empty, writable tmpfs.
TEST_F(IsolationTest, GetsAFreshTmp) {
  char host_file[] = "/tmp/forkserver-sandbox-host-XXXXXX";
  const int fd = mkstemp(host_file);
  ASSERT_GE(fd, 0);
  close(fd);
  RunOutcome run = Sh(BuildAction(), "ls -A /tmp; touch /tmp/mine && ls -A /tmp");
  unlink(host_file);
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out, "mine\n");
}

TEST_F(IsolationTest, SeesItsOwnHostname) {
  RunOutcome run = Sh(BuildAction(), "cat /proc/sys/kernel/hostname");
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out, "sandbox\n");
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  EXPECT_NE(std::string(host), "sandbox");
}

// Without the net namespace it would see the host's interfaces and reach
// the listener; without the loopback step lo would be down (connect to
// 127.0.0.1 gives ENETUNREACH instead of ECONNREFUSED).
TEST_F(IsolationTest, OnlyLoopbackAndNoHostListener) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(listen(listener, 4), 0);
  socklen_t length = sizeof(address);
  getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
  const int port = ntohs(address.sin_port);

  Policy policy = BuildAction();
  policy.mutable_namespaces()->set_net(true);
  RunOutcome ifaces = RunInSandbox(policy, {ProbePath(), "ifaces"});
  RunOutcome connect = RunInSandbox(policy, {ProbePath(), "connect", std::to_string(port)});
  Policy host_net = BuildAction();
  RunOutcome control = RunInSandbox(host_net, {ProbePath(), "connect", std::to_string(port)});
  close(listener);
  ASSERT_TRUE(ifaces.status.ok()) << ifaces.status;
  EXPECT_EQ(ifaces.out, "iface=lo\n");
  EXPECT_EQ(connect.out, absl::StrCat("connect=-1 errno=", ECONNREFUSED, "\n"));
  EXPECT_EQ(control.out, "connect=0 errno=0\n");  // The listener is real.
}

// The default block list: EPERM; a KILL_PROCESS rule: SIGSYS, reported.
TEST_F(IsolationTest, DeniedSyscallGivesEpermOrSigsys) {
  RunOutcome denied = RunInSandbox(BuildAction(), {ProbePath(), "ptrace"});
  ASSERT_TRUE(denied.status.ok()) << denied.status;
  EXPECT_EQ(denied.out, absl::StrCat("ptrace=-1 errno=", EPERM, "\n"));

  Policy kill = BuildAction();
  auto* rule = kill.mutable_seccomp()->add_rules();
  rule->set_syscall("unshare");
  rule->mutable_action()->set_type(Seccomp::KILL_PROCESS);
  for (int i = 0; i < kill.seccomp().rules_size() - 1; ++i) {  // Drop the EPERM rule.
    if (kill.seccomp().rules(i).syscall() == "unshare") {
      kill.mutable_seccomp()->mutable_rules()->DeleteSubrange(i, 1);
      break;
    }
  }
  RunOutcome killed = RunInSandbox(kill, {ProbePath(), "unshare"});
  ASSERT_TRUE(killed.status.ok()) << killed.status;
  EXPECT_EQ(killed.result.term_signal, SIGSYS);
  EXPECT_EQ(killed.result.kill_reason, KillReason::kSeccomp);
  if (absl::StartsWith(killed.result.seccomp_syscall, "unknown:")) {
    std::cout << "syscall not named: " << killed.result.seccomp_syscall << "\n";
  } else {
    EXPECT_EQ(killed.result.seccomp_syscall, "unshare");
  }

  Policy none = BuildAction();
  none.clear_seccomp();
  RunOutcome allowed = RunInSandbox(none, {ProbePath(), "ptrace"});
  EXPECT_EQ(allowed.out, "ptrace=0 errno=0\n");  // The control: no filter, no EPERM.
}

// An allow-list profile (default KILL_PROCESS): /bin/true runs, so every
// step after the filter is allowed (close_fds runs before it); /bin/ls
// needs getdents64 and dies with SIGSYS, reported as seccomp.
TEST_F(IsolationTest, DefaultDenyProfileAllowsOnlyTheList) {
  std::string rules;
  for (const char* name : {"execve", "brk", "arch_prctl", "mmap", "mprotect", "munmap", "openat",
                           "read", "close", "newfstatat", "fstat", "pread64", "access",
                           "set_tid_address", "set_robust_list", "rseq", "prlimit64", "getrandom",
                           "exit_group", "write", "ioctl", "statfs", "lseek", "futex"}) {
    absl::StrAppend(&rules, "rules { syscall: \"", name, "\" action { type: ALLOW } }\n");
  }
  Policy policy = MustParse(absl::StrCat(
      "namespaces { user { enabled: true } pid: true }\n"
      "seccomp { default_action { type: KILL_PROCESS }\n", rules, "}"));
  RunOutcome ok = RunInSandbox(policy, {"/bin/true"});
  ASSERT_TRUE(ok.status.ok()) << ok.status;
  EXPECT_EQ(ok.result.term_signal, 0);
  EXPECT_EQ(ok.result.exit_code, 0);
  RunOutcome killed = RunInSandbox(policy, {"/bin/ls", "/"});
  ASSERT_TRUE(killed.status.ok()) << killed.status;
  EXPECT_EQ(killed.result.term_signal, SIGSYS);
  EXPECT_EQ(killed.result.kill_reason, KillReason::kSeccomp);
}

// Mapped to root inside, execve would give the payload every capability
// of its namespace (permitted = bounding for uid 0) unless the bounding
// set is dropped.
TEST_F(IsolationTest, CapEffIsZero) {
  RunOutcome run = Sh(BuildAction("DEFAULT_MAP_ROOT"), "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status");
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out, "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n"
                     "CapBnd:\t0000000000000000\n");
  Policy keep = BuildAction("DEFAULT_MAP_ROOT");
  keep.mutable_privileges()->add_keep_capabilities("CAP_NET_BIND_SERVICE");
  RunOutcome kept = Sh(keep, "grep '^CapEff' /proc/self/status");
  EXPECT_EQ(kept.out, "CapEff:\t0000000000000400\n");
}

TEST_F(IsolationTest, UidMapsAsAsked) {
  RunOutcome root = Sh(BuildAction("DEFAULT_MAP_ROOT"), "id -u; id -g; cat /proc/self/uid_map");
  ASSERT_TRUE(root.status.ok()) << root.status;
  EXPECT_THAT(root.out, ::testing::StartsWith(absl::StrCat("0\n0\n")));
  EXPECT_THAT(root.out, ::testing::MatchesRegex(absl::StrCat("0\n0\n *0 +", getuid(), " +1\n")));

  RunOutcome self = Sh(BuildAction("DEFAULT_MAP_SELF"), "id -u");
  EXPECT_EQ(self.out, absl::StrCat(getuid(), "\n"));

  if (getuid() != 0) return;  // Ranges need CAP_SETUID outside.
  Policy ranges = BuildAction();
  auto* user = ranges.mutable_namespaces()->mutable_user();
  auto* uid = user->add_uid_map();
  uid->set_inside(0);
  uid->set_outside(100000);
  uid->set_count(65536);
  auto* gid = user->add_gid_map();
  gid->set_inside(0);
  gid->set_outside(100000);
  gid->set_count(65536);
  RunOutcome mapped = Sh(ranges, "cat /proc/self/uid_map /proc/self/gid_map");
  ASSERT_TRUE(mapped.status.ok()) << mapped.status;
  EXPECT_THAT(mapped.out, ::testing::MatchesRegex(
                              " *0 +100000 +65536\n *0 +100000 +65536\n"));
}

// A failing step is reported by name and item, and nothing runs.
TEST_F(IsolationTest, FailingStepIsNamed) {
  Policy policy = BuildAction();
  auto* mount = policy.mutable_filesystem()->add_mounts();
  mount->set_type(Mount::BIND_RO);
  mount->set_source("/nonexistent-forkserver-source");
  mount->set_target("/x");
  RunOutcome run = Sh(policy, "echo ran");
  EXPECT_EQ(run.status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(run.status.message()),
              HasSubstr("sandbox step 'bind' (filesystem.mounts[4]) failed: No such file or directory"));
  EXPECT_EQ(run.out, "");

  RunOutcome missing = RunInSandbox(BuildAction(), {"/nonexistent-program"});
  EXPECT_EQ(missing.status.code(), absl::StatusCode::kNotFound) << missing.status;
}

// Each namespace asked for is a new one (the ids differ from ours).
TEST_F(IsolationTest, TimeCgroupIpcNetNamespacesAreNew) {
  Policy policy = MustParse(
      "namespaces { user { enabled: true } time: true cgroup: true ipc: true net: true }");
  RunOutcome run = Sh(policy, "for n in time cgroup ipc net user; do readlink /proc/self/ns/$n; done");
  ASSERT_TRUE(run.status.ok()) << run.status;
  std::string host;
  for (const char* n : {"time", "cgroup", "ipc", "net", "user"}) {
    char link[64] = {};
    ASSERT_GT(readlink(absl::StrCat("/proc/self/ns/", n).c_str(), link, sizeof(link) - 1), 0);
    absl::StrAppend(&host, link, "\n");
  }
  std::vector<std::string> inside = absl::StrSplit(run.out, '\n');
  std::vector<std::string> outside = absl::StrSplit(host, '\n');
  ASSERT_EQ(inside.size(), outside.size()) << run.out;
  for (size_t i = 0; i + 1 < inside.size(); ++i) EXPECT_NE(inside[i], outside[i]);
}

// With reaping_init, pid 1 is the init and the payload pid 2; its exit
// code passes through, a signal death as 128+N.
TEST_F(IsolationTest, ReapingInitPassesTheExitThrough) {
  Policy policy = BuildAction();
  policy.mutable_namespaces()->set_reaping_init(true);
  RunOutcome pid = Sh(policy, "echo $$; (sleep 0 &) ; exit 7");
  ASSERT_TRUE(pid.status.ok()) << pid.status;
  EXPECT_EQ(pid.out, "2\n");
  EXPECT_EQ(pid.result.exit_code, 7);
  RunOutcome killed = Sh(policy, "kill -TERM $$");
  EXPECT_EQ(killed.result.exit_code, 128 + SIGTERM);
}

// clear_env leaves only the policy's variables; cwd is inside the view.
TEST_F(IsolationTest, ProcessSetupEnvironmentAndCwd) {
  setenv("FORKSERVER_SANDBOX_HOST_ONLY", "leak", 1);
  Policy policy = BuildAction();
  policy.mutable_process()->set_clear_env(true);
  auto* var = policy.mutable_process()->add_env();
  var->set_name("A");
  var->set_value("b c");
  policy.mutable_process()->set_cwd("/usr/lib");
  RunOutcome run = Sh(policy, "echo \"$A|$FORKSERVER_SANDBOX_HOST_ONLY|$HOME\"; pwd");
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out, "b c||\n/usr/lib\n");
  Policy keep = BuildAction();
  RunOutcome kept = Sh(keep, "echo \"$FORKSERVER_SANDBOX_HOST_ONLY\"");
  EXPECT_EQ(kept.out, "leak\n");
  unsetenv("FORKSERVER_SANDBOX_HOST_ONLY");
}

// die_with_parent: the launcher dies, so does the sandboxed child.
TEST_F(IsolationTest, DiesWithParent) {
  int pipe_fds[2];
  ASSERT_EQ(pipe2(pipe_fds, O_CLOEXEC), 0);
  const pid_t launcher = fork();
  if (launcher == 0) {
    auto sandbox = CompiledSandbox::Create(BuildAction());
    if (!sandbox.ok()) _exit(1);
    auto process = LaunchSandboxed(**sandbox, nullptr, {"/bin/sleep", "600"});
    if (!process.ok()) _exit(2);
    const pid_t pid = (*process)->pid();
    (void)!write(pipe_fds[1], &pid, sizeof(pid));
    pause();
    _exit(0);
  }
  close(pipe_fds[1]);
  pid_t child = 0;
  ASSERT_EQ(read(pipe_fds[0], &child, sizeof(child)), static_cast<ssize_t>(sizeof(child)));
  close(pipe_fds[0]);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  ASSERT_GE(pidfd, 0);
  kill(launcher, SIGKILL);
  waitpid(launcher, nullptr, 0);
  struct pollfd ready = {pidfd, POLLIN, 0};
  // Not a timing check: a generous bound so a failure cannot hang the test.
  EXPECT_EQ(poll(&ready, 1, 30000), 1) << "the sandboxed child outlived its launcher";
  close(pidfd);
}

// The child gets only 0, 1, 2; the launcher leaves nothing open.
TEST_F(IsolationTest, NoDescriptorsLeak) {
  const int before = CountOpenFds();
  RunOutcome run = Sh(BuildAction(), "ls /proc/self/fd");
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out, "0\n1\n2\n3\n");  // 3: ls's own listing.
  for (int i = 0; i < 20; ++i) Sh(BuildAction(), "true");
  EXPECT_EQ(CountOpenFds(), before);
}

}  // namespace
}  // namespace testing
}  // namespace sandbox
}  // namespace forkserver
