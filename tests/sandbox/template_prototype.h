// A template zygote prototype for the benchmark (the server's real
// templates are the next phase): a process that entered the long-lived
// namespaces and the filesystem view once, holds the compiled filter, and
// per request clone3s a child that does only the per-child steps
// (forkserver/child/sandbox/steps.h kPerChild) and execs.
//
// One request = one launch, run to completion: the template replies with
// the child's wait status, or a SandboxFailure. Single-threaded caller.

#ifndef FORKSERVER_TESTS_SANDBOX_TEMPLATE_PROTOTYPE_H_
#define FORKSERVER_TESTS_SANDBOX_TEMPLATE_PROTOTYPE_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "forkserver/sandbox/compiled_sandbox.h"

namespace forkserver {
namespace sandbox {
namespace testing {

struct TemplateOptions {
  // Per-child CLONE_NEWPID|CLONE_NEWNS and a fresh /proc (each child its
  // own pid namespace, as bwrap gives each launch); otherwise children
  // share the template's pid namespace.
  bool pid_namespace_per_child = true;
  // With it, also a fresh tmpfs /tmp per child (bwrap's --tmpfs /tmp is
  // per launch); without, children share the template's /tmp.
  bool fresh_tmp_per_child = true;
  bool reaping_init = false;
};

class TemplatePrototype {
 public:
  // The template enters sandbox's namespaces and view; children exec
  // argv (absolute path, NULL-free strings kept by the caller).
  static absl::StatusOr<std::unique_ptr<TemplatePrototype>> Start(
      const CompiledSandbox& sandbox, const std::vector<std::string>& argv,
      const TemplateOptions& options);
  ~TemplatePrototype();

  // One launch; cgroup_procs_fds (v1 leaves) are passed to the child. The
  // child's wait status.
  absl::StatusOr<int> Launch(const std::vector<int>& cgroup_procs_fds = {});

 private:
  TemplatePrototype() = default;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int socket_ = -1;
  std::vector<std::string> argv_;
  std::vector<char*> argv_c_;
  std::vector<char*> envp_c_;
};

}  // namespace testing
}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_SANDBOX_TEMPLATE_PROTOTYPE_H_
