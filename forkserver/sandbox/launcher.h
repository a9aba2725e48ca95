// File: forkserver/sandbox/launcher.h
// -----------------------------------------------------------------------------
// Launches one sandboxed command from a CompiledSandbox, with every step in
// the child (setup per launch), and waits for it with the wall-time limit
// and a kill reason. The server's template path reuses the same pieces.
//
// Launch, in order (reference/sandbox-steps.md):
//   1. a leaf cgroup with the limits, when the policy has any;
//   2. clone3(CLONE_NEW* | CLONE_PIDFD [| CLONE_INTO_CGROUP on v2]); the
//      child joins its v1 cgroups first, then waits on a release pipe;
//   3. the parent writes setgroups/uid_map/gid_map, then releases it;
//   4. the child runs forkserver/child/sandbox/steps.h (kAll) and execs;
//   5. the parent reads the report pipe: EOF = exec'd, a record = the
//      failed step, returned as INTERNAL / NOT_FOUND / PERMISSION_DENIED
//      "sandbox step 'bind' (filesystem.mounts[2]) failed: Permission denied".
// stdin/stdout/stderr are inherited; every other fd is closed at exec.
// Not thread-safe with respect to the CgroupManager.

#ifndef FORKSERVER_SANDBOX_LAUNCHER_H_
#define FORKSERVER_SANDBOX_LAUNCHER_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "forkserver/child/sandbox/sandbox_plan.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/compiled_sandbox.h"

namespace forkserver {
namespace sandbox {

enum class KillReason {
  kNone,
  kWallTime,
  kCpuTime,
  kMemory,     // OOM-killed in its memory cgroup.
  kPidsLimit,  // Failed after a fork hit pids.max.
  kSeccomp,    // SIGSYS: a KILL_PROCESS rule or default (see seccomp_syscall).
  kSignal,     // Any other signal, from outside.
};
const char* KillReasonName(KillReason reason);

struct SandboxResult {
  int exit_code = -1;    // When it exited.
  int term_signal = 0;   // When a signal ended it.
  KillReason kill_reason = KillReason::kNone;
  std::optional<uint64_t> memory_peak;  // From the cgroup, when there is one.
  bool pids_limit_hit = false;
  // kSeccomp: the syscall's name from the kernel's audit record, or why it
  // is unknown ("unknown: ..."), see seccomp_log.h.
  std::string seccomp_syscall;
  struct rusage usage = {};
  absl::Duration wall_time;
};

class SandboxedProcess {
 public:
  ~SandboxedProcess();  // Kills and reaps a child still running.
  SandboxedProcess(const SandboxedProcess&) = delete;
  SandboxedProcess& operator=(const SandboxedProcess&) = delete;
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }

 private:
  friend absl::StatusOr<std::unique_ptr<SandboxedProcess>> LaunchSandboxed(
      const CompiledSandbox&, CgroupManager*, const std::vector<std::string>&);
  friend absl::StatusOr<SandboxResult> WaitSandboxed(SandboxedProcess&);
  SandboxedProcess() = default;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  std::unique_ptr<CgroupLeaf> leaf_;
  absl::Time start_;
  uint64_t start_monotonic_us_ = 0;
  uint64_t wall_time_ms_ = 0;
  uint64_t cpu_time_ms_ = 0;
};

// argv[0] is the program's absolute path inside the sandbox. cgroups may
// be null only when the policy sets no cgroup limit (else
// FAILED_PRECONDITION).
absl::StatusOr<std::unique_ptr<SandboxedProcess>> LaunchSandboxed(
    const CompiledSandbox& sandbox, CgroupManager* cgroups,
    const std::vector<std::string>& argv);

// Waits for the exit (SIGKILL at the wall-time limit), reaps, removes the
// cgroup leaf, and says why it ended.
absl::StatusOr<SandboxResult> WaitSandboxed(SandboxedProcess& process);

// The status for a failure record read from a report pipe; item names
// the policy field (CompiledSandbox::DescribeFailureItem), may be empty.
absl::Status SandboxFailureToStatus(const sandbox_child::SandboxFailure& failure,
                                    const std::string& item);

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_LAUNCHER_H_
