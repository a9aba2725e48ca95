#include "forkserver/sandbox/policy_builder.h"

#include "forkserver/sandbox/policy_validator.h"
#include "forkserver/sandbox/status_macros.h"

namespace forkserver {
namespace sandbox {

PolicyBuilder& PolicyBuilder::UserNamespace(forkserver::sandbox::UserNamespace::DefaultMap map) {
  auto* user = policy_.mutable_namespaces()->mutable_user();
  user->set_enabled(true);
  user->set_default_map(map);
  return *this;
}

PolicyBuilder& PolicyBuilder::MapUid(uint32_t inside, uint32_t outside, uint32_t count) {
  IdMapping* m = policy_.mutable_namespaces()->mutable_user()->add_uid_map();
  m->set_inside(inside);
  m->set_outside(outside);
  m->set_count(count);
  return *this;
}

PolicyBuilder& PolicyBuilder::MapGid(uint32_t inside, uint32_t outside, uint32_t count) {
  IdMapping* m = policy_.mutable_namespaces()->mutable_user()->add_gid_map();
  m->set_inside(inside);
  m->set_outside(outside);
  m->set_count(count);
  return *this;
}

PolicyBuilder& PolicyBuilder::PidNamespace(bool reaping_init) {
  policy_.mutable_namespaces()->set_pid(true);
  policy_.mutable_namespaces()->set_reaping_init(reaping_init);
  return *this;
}

PolicyBuilder& PolicyBuilder::MountNamespace() {
  policy_.mutable_namespaces()->set_mount(true);
  return *this;
}

PolicyBuilder& PolicyBuilder::IpcNamespace() {
  policy_.mutable_namespaces()->set_ipc(true);
  return *this;
}

PolicyBuilder& PolicyBuilder::UtsNamespace(const std::string& hostname) {
  policy_.mutable_namespaces()->set_uts(true);
  policy_.mutable_namespaces()->set_hostname(hostname);
  return *this;
}

PolicyBuilder& PolicyBuilder::NetNamespace() {
  policy_.mutable_namespaces()->set_net(true);
  return *this;
}

PolicyBuilder& PolicyBuilder::CgroupNamespace() {
  policy_.mutable_namespaces()->set_cgroup(true);
  return *this;
}

PolicyBuilder& PolicyBuilder::TimeNamespace() {
  policy_.mutable_namespaces()->set_time(true);
  return *this;
}

PolicyBuilder& PolicyBuilder::AddMount(Mount::Type type, const std::string& source,
                                       const std::string& target, uint64_t size_bytes) {
  Mount* mount = policy_.mutable_filesystem()->add_mounts();
  mount->set_type(type);
  mount->set_source(source);
  mount->set_target(target);
  mount->set_size_bytes(size_bytes);
  return *this;
}

PolicyBuilder& PolicyBuilder::BindReadOnly(const std::string& source, const std::string& target) {
  return AddMount(Mount::BIND_RO, source, target);
}
PolicyBuilder& PolicyBuilder::BindReadWrite(const std::string& source, const std::string& target) {
  return AddMount(Mount::BIND_RW, source, target);
}
PolicyBuilder& PolicyBuilder::Tmpfs(const std::string& target, uint64_t size_bytes) {
  return AddMount(Mount::TMPFS, "", target, size_bytes);
}
PolicyBuilder& PolicyBuilder::Proc(const std::string& target) { return AddMount(Mount::PROC, "", target); }
PolicyBuilder& PolicyBuilder::Dev(const std::string& target) { return AddMount(Mount::DEV, "", target); }
PolicyBuilder& PolicyBuilder::Symlink(const std::string& text, const std::string& target) {
  return AddMount(Mount::SYMLINK, text, target);
}

PolicyBuilder& PolicyBuilder::ReadOnlyRoot() {
  policy_.mutable_filesystem()->set_read_only_root(true);
  return *this;
}

PolicyBuilder& PolicyBuilder::AllowNewPrivs() {
  policy_.mutable_privileges()->set_allow_new_privs(true);
  return *this;
}

PolicyBuilder& PolicyBuilder::KeepCapability(const std::string& name) {
  policy_.mutable_privileges()->add_keep_capabilities(name);
  return *this;
}

PolicyBuilder& PolicyBuilder::Rlimit(const std::string& name, uint64_t soft, uint64_t hard) {
  forkserver::sandbox::Rlimit* limit = policy_.add_rlimits();
  limit->set_name(name);
  limit->set_soft(soft);
  limit->set_hard(hard);
  return *this;
}

PolicyBuilder& PolicyBuilder::SeccompDefault(Seccomp::ActionType type, int errno_value) {
  auto* action = policy_.mutable_seccomp()->mutable_default_action();
  action->set_type(type);
  action->set_errno_value(errno_value);
  return *this;
}

PolicyBuilder& PolicyBuilder::AddRule(const std::string& name, Seccomp::ActionType type,
                                      int errno_value) {
  Seccomp::Rule* rule = policy_.mutable_seccomp()->add_rules();
  rule->set_syscall(name);
  rule->mutable_action()->set_type(type);
  rule->mutable_action()->set_errno_value(errno_value);
  return *this;
}

PolicyBuilder& PolicyBuilder::AllowSyscall(const std::string& name) { return AddRule(name, Seccomp::ALLOW, 0); }
PolicyBuilder& PolicyBuilder::DenySyscall(const std::string& name, int errno_value) {
  return AddRule(name, Seccomp::ERRNO, errno_value);
}
PolicyBuilder& PolicyBuilder::KillOnSyscall(const std::string& name) {
  return AddRule(name, Seccomp::KILL_PROCESS, 0);
}

PolicyBuilder& PolicyBuilder::WallTime(absl::Duration limit) {
  policy_.mutable_limits()->set_wall_time_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(limit)));
  return *this;
}
PolicyBuilder& PolicyBuilder::CpuTime(absl::Duration limit) {
  policy_.mutable_limits()->set_cpu_time_ms(static_cast<uint64_t>(absl::ToInt64Milliseconds(limit)));
  return *this;
}
PolicyBuilder& PolicyBuilder::Memory(uint64_t bytes) {
  policy_.mutable_limits()->set_memory_bytes(bytes);
  return *this;
}
PolicyBuilder& PolicyBuilder::Pids(uint64_t max) {
  policy_.mutable_limits()->set_pids_max(max);
  return *this;
}
PolicyBuilder& PolicyBuilder::Cpu(uint32_t millicores) {
  policy_.mutable_limits()->set_cpu_millicores(millicores);
  return *this;
}

PolicyBuilder& PolicyBuilder::ClearEnv() {
  policy_.mutable_process()->set_clear_env(true);
  return *this;
}
PolicyBuilder& PolicyBuilder::SetEnv(const std::string& name, const std::string& value) {
  EnvVar* var = policy_.mutable_process()->add_env();
  var->set_name(name);
  var->set_value(value);
  return *this;
}
PolicyBuilder& PolicyBuilder::Cwd(const std::string& path) {
  policy_.mutable_process()->set_cwd(path);
  return *this;
}
PolicyBuilder& PolicyBuilder::DieWithParent() {
  policy_.mutable_process()->set_die_with_parent(true);
  return *this;
}

absl::StatusOr<Policy> PolicyBuilder::Build() const {
  SANDBOX_RETURN_IF_ERROR(ValidatePolicy(policy_));
  return policy_;
}

}  // namespace sandbox
}  // namespace forkserver
