// Helpers for the sandbox tests: run a command in a sandbox built from a
// textproto policy and collect what it printed and how it ended.

#ifndef FORKSERVER_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_
#define FORKSERVER_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/launcher.h"
#include "proto/sandbox.pb.h"

namespace forkserver {
namespace sandbox {
namespace testing {

struct RunOutcome {
  absl::Status status;  // Of compile + launch + wait.
  SandboxResult result;
  std::string out;      // The child's stdout.
};

Policy MustParse(const std::string& text);

// Compiles, launches (stdout captured through a pipe), waits.
RunOutcome RunInSandbox(const Policy& policy, const std::vector<std::string>& argv,
                        CgroupManager* cgroups = nullptr);

// A directory under /var/tmp (reachable through `--ro-bind / /`, unlike
// /tmp, which the sandboxes replace) holding a copy of the probe and the
// profiles, readable by nobody. Made once per process.
const std::string& SharedDir();
std::string ProbePath();  // SharedDir()/sandbox_probe
std::string ProfilePath(const std::string& name);  // e.g. "build_action"

// Why user namespaces cannot be used here, or "" when they can.
std::string UserNamespaceUnavailableReason();

// Open descriptors of this process.
int CountOpenFds();

}  // namespace testing
}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_
