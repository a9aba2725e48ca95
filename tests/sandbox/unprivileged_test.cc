// The unprivileged path: UnprivilegedSuite (as root) re-runs this binary
// as nobody with setpriv, and the NobodyTest cases run there. Where the
// kernel refuses unprivileged user namespaces they skip, saying why.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/policy_parser.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace forkserver {
namespace sandbox {
namespace testing {
namespace {

using ::testing::HasSubstr;

std::string SetuidProbePath() { return SharedDir() + "/sandbox_probe_setuid"; }

// Runs argv with stdout+stderr captured; returns {exit status, output}.
std::pair<int, std::string> RunCaptured(const std::vector<std::string>& argv,
                                        const std::string& cwd) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return {-1, "pipe2 failed"};
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    if (chdir(cwd.c_str()) != 0) _exit(126);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // A clean environment: Bazel's (XML_OUTPUT_FILE, TEST_PREMATURE_EXIT_FILE,
    // ...) points at files nobody may not write.
    const std::string shared = "FORKSERVER_SANDBOX_SHARED_DIR=" + SharedDir();
    char* env[] = {const_cast<char*>("PATH=/usr/bin:/bin"), const_cast<char*>(shared.c_str()),
                   nullptr};
    execve(args[0], args.data(), env);
    _exit(127);
  }
  close(out[1]);
  std::string output;
  char buffer[4096];
  ssize_t n;
  while ((n = read(out[0], buffer, sizeof(buffer))) > 0) output.append(buffer, n);
  close(out[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {status, output};
}

TEST(UnprivilegedSuite, RunsTheNobodyTestsAsNobody) {
  if (getuid() != 0) GTEST_SKIP() << "already unprivileged; this is the re-run";
  namespace fs = std::filesystem;
  const std::string copy = SharedDir() + "/sandbox_tests";
  fs::copy_file("/proc/self/exe", copy, fs::copy_options::overwrite_existing);
  chmod(copy.c_str(), 0755);
  // A setuid-root probe for the no_new_privs test.
  fs::copy_file(ProbePath(), SetuidProbePath(), fs::copy_options::overwrite_existing);
  ASSERT_EQ(chown(SetuidProbePath().c_str(), 0, 0), 0);
  ASSERT_EQ(chmod(SetuidProbePath().c_str(), 04755), 0);
  auto [status, output] = RunCaptured(
      {"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", copy,
       "--gtest_filter=NobodyTest.*"},
      SharedDir());
  std::cout << output;
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status << ":\n" << output;
  if (output.find("[       OK ]") == std::string::npos) {
    GTEST_SKIP() << "every unprivileged test skipped:\n" << output;
  }
}

class NobodyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (getuid() == 0) GTEST_SKIP() << "runs as nobody, from UnprivilegedSuite";
  }
  void RequireUserNamespaces() {
    if (std::string reason = UserNamespaceUnavailableReason(); !reason.empty()) {
      GTEST_SKIP() << "unprivileged user namespaces unavailable: " << reason;
    }
  }
};

TEST_F(NobodyTest, BuildActionIsolatesUnprivileged) {
  RequireUserNamespaces();
  absl::StatusOr<Policy> policy = LoadPolicyFile(ProfilePath("build_action"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  RunOutcome run = RunInSandbox(*policy, {"/bin/sh", "-c",
      "echo $$; cat /proc/sys/kernel/hostname; grep CapEff /proc/self/status; id -u;"
      " ls -A /tmp; touch /etc/x 2>&1; true"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out, absl::StrCat("1\nsandbox\nCapEff:\t0000000000000000\n", getuid(),
                                  "\ntouch: cannot touch '/etc/x': Read-only file system\n"));
}

TEST_F(NobodyTest, RootMapIsUidZeroInsideWithNoCapabilities) {
  RequireUserNamespaces();
  absl::StatusOr<Policy> policy = LoadPolicyFile(ProfilePath("build_action"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  policy->mutable_namespaces()->mutable_user()->set_default_map(UserNamespace::DEFAULT_MAP_ROOT);
  RunOutcome run = RunInSandbox(*policy, {"/bin/sh", "-c",
      "id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_THAT(run.out, ::testing::MatchesRegex(absl::StrCat(
                           "0\n *0 +", getuid(), " +1\nCapEff:\t0000000000000000\n")));
}

TEST_F(NobodyTest, NamespacesWithoutUserNamespaceAreFailedPrecondition) {
  RunOutcome run = RunInSandbox(MustParse("namespaces { pid: true mount: true }"), {"/bin/true"});
  EXPECT_EQ(run.status.code(), absl::StatusCode::kFailedPrecondition) << run.status;
  EXPECT_THAT(std::string(run.status.message()), HasSubstr("sandbox step 'namespaces'"));
}

TEST_F(NobodyTest, CgroupLimitWithoutWritableCgroupIsFailedPrecondition) {
  Limits limits;
  limits.set_memory_bytes(1 << 26);
  auto manager = CgroupManager::Create(limits);
  if (manager.ok()) GTEST_SKIP() << "this host delegates a cgroup to nobody";
  EXPECT_EQ(manager.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(manager.status().message()), HasSubstr("sandbox step 'cgroup_memory'"));
}

// The control runs the same setuid-root binary outside any sandbox and
// gets euid 0; with no_new_privs it keeps nobody's.
TEST_F(NobodyTest, NoNewPrivsStopsSetuidGain) {
  auto [status, control] = RunCaptured({SetuidProbePath(), "ids"}, "/");
  ASSERT_EQ(control, absl::StrCat("uid=", getuid(), " euid=0\n"));
  RunOutcome run = RunInSandbox(MustParse(""), {SetuidProbePath(), "ids"});
  ASSERT_TRUE(run.status.ok()) << run.status;
  EXPECT_EQ(run.out, absl::StrCat("uid=", getuid(), " euid=", getuid(), "\n"));
}

}  // namespace
}  // namespace testing
}  // namespace sandbox
}  // namespace forkserver
