#include "tests/sandbox/sandbox_test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "forkserver/sandbox/compiled_sandbox.h"
#include "forkserver/sandbox/host_probe.h"
#include "forkserver/sandbox/policy_parser.h"
#include "gtest/gtest.h"

namespace forkserver {
namespace sandbox {
namespace testing {

Policy MustParse(const std::string& text) {
  absl::StatusOr<Policy> policy = ParsePolicyText(text, "test");
  EXPECT_TRUE(policy.ok()) << policy.status();
  return policy.ok() ? *policy : Policy();
}

RunOutcome RunInSandbox(const Policy& policy, const std::vector<std::string>& argv,
                        CgroupManager* cgroups) {
  RunOutcome outcome;
  absl::StatusOr<std::unique_ptr<CompiledSandbox>> sandbox = CompiledSandbox::Create(policy);
  if (!sandbox.ok()) {
    outcome.status = sandbox.status();
    return outcome;
  }
  // A memfd, not a pipe: a child that outlives its limit must not block
  // the read, and the wait is what enforces the limit.
  const int out = memfd_create("sandbox-test-stdout", MFD_CLOEXEC);
  if (out < 0) {
    outcome.status = absl::ErrnoToStatus(errno, "memfd_create");
    return outcome;
  }
  // The child inherits fd 1: point it at the memfd for the launch only.
  const int saved = fcntl(1, F_DUPFD_CLOEXEC, 3);
  dup2(out, 1);
  auto process = LaunchSandboxed(**sandbox, cgroups, argv);
  dup2(saved, 1);
  close(saved);
  if (process.ok()) {
    absl::StatusOr<SandboxResult> result = WaitSandboxed(**process);
    outcome.status = result.status();
    if (result.ok()) outcome.result = *result;
  } else {
    outcome.status = process.status();
  }
  char buffer[4096];
  ssize_t n;
  off_t offset = 0;
  while ((n = pread(out, buffer, sizeof(buffer), offset)) > 0) {
    outcome.out.append(buffer, n);
    offset += n;
  }
  close(out);
  return outcome;
}

const std::string& SharedDir() {
  static const std::string* dir = [] {
    if (const char* given = std::getenv("FORKSERVER_SANDBOX_SHARED_DIR")) return new std::string(given);
    char pattern[] = "/var/tmp/forkserver-sandbox-test-XXXXXX";
    std::string* path = new std::string(mkdtemp(pattern));
    chmod(path->c_str(), 0755);
    namespace fs = std::filesystem;
    fs::copy_file("tests/sandbox/sandbox_probe", *path + "/sandbox_probe");
    chmod((*path + "/sandbox_probe").c_str(), 0755);
    for (const char* name : {"build_action", "default"}) {
      fs::copy_file(std::string("profiles/") + name + ".textproto",
                    *path + "/" + name + ".textproto");
      chmod((*path + "/" + name + ".textproto").c_str(), 0644);
    }
    // Ours: gone when the process ends (the nobody re-run only borrows it).
    static std::string* owned = path;
    std::atexit([] { std::error_code ignored; std::filesystem::remove_all(*owned, ignored); });
    return path;
  }();
  return *dir;
}

std::string ProbePath() { return SharedDir() + "/sandbox_probe"; }

std::string ProfilePath(const std::string& name) { return SharedDir() + "/" + name + ".textproto"; }

std::string UserNamespaceUnavailableReason() {
  absl::Status probe = ProbeNamespaces(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID);
  return probe.ok() ? "" : std::string(probe.message());
}

int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (dirent* entry = readdir(dir)) count += entry->d_name[0] != '.';
  closedir(dir);
  return count - 1;  // The listing's own descriptor.
}

}  // namespace testing
}  // namespace sandbox
}  // namespace forkserver
