// File: forkserver/sandbox/policy_builder.h
// -----------------------------------------------------------------------------
// Builds a Policy in C++ instead of a textproto profile:
//
//   absl::StatusOr<Policy> policy = PolicyBuilder()
//       .UserNamespace().PidNamespace().MountNamespace().IpcNamespace()
//       .UtsNamespace("sandbox")
//       .BindReadOnly("/", "/").Tmpfs("/tmp").Proc("/proc").Dev("/dev")
//       .Rlimit("nofile", 1024, 4096)
//       .SeccompDefault(Seccomp::ALLOW).DenySyscall("ptrace", EPERM)
//       .Memory(256 << 20).WallTime(absl::Seconds(30))
//       .Build();   // ValidatePolicy: INVALID_ARGUMENT naming the field
//
// Nothing is implied: a mount needs MountNamespace(), Proc() needs
// PidNamespace(), as in profiles. Not thread-safe.

#ifndef FORKSERVER_SANDBOX_POLICY_BUILDER_H_
#define FORKSERVER_SANDBOX_POLICY_BUILDER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/sandbox.pb.h"

namespace forkserver {
namespace sandbox {

class PolicyBuilder {
 public:
  PolicyBuilder& UserNamespace(
      forkserver::sandbox::UserNamespace::DefaultMap map = UserNamespace::DEFAULT_MAP_SELF);
  PolicyBuilder& MapUid(uint32_t inside, uint32_t outside, uint32_t count = 1);
  PolicyBuilder& MapGid(uint32_t inside, uint32_t outside, uint32_t count = 1);
  PolicyBuilder& PidNamespace(bool reaping_init = false);
  PolicyBuilder& MountNamespace();
  PolicyBuilder& IpcNamespace();
  PolicyBuilder& UtsNamespace(const std::string& hostname = "");
  PolicyBuilder& NetNamespace();
  PolicyBuilder& CgroupNamespace();
  PolicyBuilder& TimeNamespace();

  PolicyBuilder& BindReadOnly(const std::string& source, const std::string& target);
  PolicyBuilder& BindReadWrite(const std::string& source, const std::string& target);
  PolicyBuilder& Tmpfs(const std::string& target, uint64_t size_bytes = 0);
  PolicyBuilder& Proc(const std::string& target = "/proc");
  PolicyBuilder& Dev(const std::string& target = "/dev");
  PolicyBuilder& Symlink(const std::string& text, const std::string& target);
  PolicyBuilder& ReadOnlyRoot();

  PolicyBuilder& AllowNewPrivs();
  PolicyBuilder& KeepCapability(const std::string& name);
  PolicyBuilder& Rlimit(const std::string& name, uint64_t soft, uint64_t hard);

  PolicyBuilder& SeccompDefault(Seccomp::ActionType type, int errno_value = 0);
  PolicyBuilder& AllowSyscall(const std::string& name);
  PolicyBuilder& DenySyscall(const std::string& name, int errno_value);
  PolicyBuilder& KillOnSyscall(const std::string& name);

  PolicyBuilder& WallTime(absl::Duration limit);
  PolicyBuilder& CpuTime(absl::Duration limit);
  PolicyBuilder& Memory(uint64_t bytes);
  PolicyBuilder& Pids(uint64_t max);
  PolicyBuilder& Cpu(uint32_t millicores);

  PolicyBuilder& ClearEnv();
  PolicyBuilder& SetEnv(const std::string& name, const std::string& value);
  PolicyBuilder& Cwd(const std::string& path);
  PolicyBuilder& DieWithParent();

  // The policy, validated.
  absl::StatusOr<Policy> Build() const;

 private:
  PolicyBuilder& AddMount(Mount::Type type, const std::string& source, const std::string& target,
                          uint64_t size_bytes = 0);
  PolicyBuilder& AddRule(const std::string& name, Seccomp::ActionType type, int errno_value);
  Policy policy_;
};

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_POLICY_BUILDER_H_
