// File: forkserver/sandbox/compiled_sandbox.h
// -----------------------------------------------------------------------------
// A policy made ready to launch with: validated (policy_validator.h),
// checked against the host (host_probe.h), seccomp compiled to BPF once,
// every path and map text precomputed. plan() is the child-side
// SandboxPlan (forkserver/child/sandbox/sandbox_plan.h) whose pointers
// point into this object: keep it alive until the child has exec'd.
// The per-launch fields (report_fd, release_fd, cgroup fds, exec_*) are
// left for the launcher to fill in a copy.
//
//   ASSIGN_OR_RETURN(auto sandbox, CompiledSandbox::Create(policy));
//   sandbox_child::SandboxPlan plan = sandbox->plan();   // then per launch
//
// Immutable after Create; safe to share between threads.

#ifndef FORKSERVER_SANDBOX_COMPILED_SANDBOX_H_
#define FORKSERVER_SANDBOX_COMPILED_SANDBOX_H_

#include <linux/filter.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "forkserver/child/sandbox/sandbox_plan.h"
#include "proto/sandbox.pb.h"

namespace forkserver {
namespace sandbox {

struct CompileOptions {
  // An existing host directory the child covers with its base tmpfs while
  // it builds the view (in its own mount namespace; the host never sees it).
  std::string base_dir = "/tmp";
  // Skip ProbeNamespaces (when the caller already knows, e.g. a template
  // inside the namespaces compiling its per-child part).
  bool probe_host = true;
};

class CompiledSandbox {
 public:
  // INVALID_ARGUMENT (policy), FAILED_PRECONDITION (host), INTERNAL.
  static absl::StatusOr<std::unique_ptr<CompiledSandbox>> Create(
      const Policy& policy, const CompileOptions& options = {});

  const Policy& policy() const { return policy_; }
  const sandbox_child::SandboxPlan& plan() const { return plan_; }
  // CLONE_NEW* flags for clone3.
  uint64_t clone_flags() const { return clone_flags_; }
  // Text for /proc/PID/uid_map and gid_map (null without a user namespace).
  const char* uid_map() const { return uid_map_.empty() ? nullptr : uid_map_.c_str(); }
  const char* gid_map() const { return gid_map_.empty() ? nullptr : gid_map_.c_str(); }
  bool deny_setgroups() const { return deny_setgroups_; }
  const std::vector<sock_filter>& filter() const { return filter_; }
  // "NAME=value" strings: the host environment (unless clear_env) with the
  // policy's variables set over it.
  std::vector<std::string> Environment(char* const* host_environ) const;
  // The policy field a child-side failure record's index points at, e.g.
  // "filesystem.mounts[3]" or "rlimits[1]"; "" when there is none.
  std::string DescribeFailureItem(int32_t step, int32_t index) const;

 private:
  CompiledSandbox() = default;
  absl::Status Build(const CompileOptions& options);
  void BuildNamespaces();
  void BuildMounts();
  void AddMount(sandbox_child::MountKind kind, bool read_only, const std::string& source,
                const std::string& target, const std::string& data);
  const char* Keep(std::string text);

  Policy policy_;
  sandbox_child::SandboxPlan plan_;
  uint64_t clone_flags_ = 0;
  std::string uid_map_, gid_map_;
  // Only with a user namespace: the host's own setgroups file is not ours
  // to write (EPERM), and there is nothing to deny outside one.
  bool deny_setgroups_ = false;
  std::deque<std::string> strings_;  // Stable addresses for plan_'s strings.
  std::vector<sandbox_child::MountOp> mounts_;
  std::vector<int> mount_op_source_;
  int current_mount_ = -1;  // mounts_[i] came from policy mount [i].
  std::vector<sandbox_child::RlimitOp> rlimits_;
  std::vector<sock_filter> filter_;
};

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_COMPILED_SANDBOX_H_
