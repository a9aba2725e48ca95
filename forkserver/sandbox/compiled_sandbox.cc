#include "forkserver/sandbox/compiled_sandbox.h"

#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "forkserver/sandbox/host_probe.h"
#include "forkserver/sandbox/names.h"
#include "forkserver/sandbox/policy_validator.h"
#include "forkserver/sandbox/seccomp_compiler.h"
#include "forkserver/sandbox/status_macros.h"

namespace forkserver {
namespace sandbox {
namespace {

using sandbox_child::MountKind;

int CapLastCap() {
  std::ifstream in("/proc/sys/kernel/cap_last_cap");
  int value = 40;
  in >> value;
  return value;
}

// Lines of a map; the policy's, or one line for the caller's own id.
std::string MapText(const google::protobuf::RepeatedPtrField<IdMapping>& lines,
                    UserNamespace::DefaultMap default_map, unsigned own_id) {
  std::string text;
  for (const IdMapping& m : lines) {
    absl::StrAppend(&text, m.inside(), " ", m.outside(), " ", m.count() == 0 ? 1 : m.count(), "\n");
  }
  if (text.empty()) {
    const unsigned inside = default_map == UserNamespace::DEFAULT_MAP_ROOT ? 0 : own_id;
    text = absl::StrCat(inside, " ", own_id, " 1\n");
  }
  return text;
}

unsigned InsideId(const google::protobuf::RepeatedPtrField<IdMapping>& lines, unsigned own_id,
                  UserNamespace::DefaultMap default_map) {
  for (const IdMapping& m : lines) {
    const unsigned count = m.count() == 0 ? 1 : m.count();
    if (own_id >= m.outside() && own_id - m.outside() < count) return m.inside() + (own_id - m.outside());
  }
  if (!lines.empty()) return lines.Get(0).inside();
  return default_map == UserNamespace::DEFAULT_MAP_ROOT ? 0 : own_id;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CompiledSandbox>> CompiledSandbox::Create(
    const Policy& policy, const CompileOptions& options) {
  SANDBOX_RETURN_IF_ERROR(ValidatePolicy(policy));
  std::unique_ptr<CompiledSandbox> compiled(new CompiledSandbox());
  compiled->policy_ = policy;
  SANDBOX_RETURN_IF_ERROR(compiled->Build(options));
  if (options.probe_host) SANDBOX_RETURN_IF_ERROR(ProbeNamespaces(compiled->clone_flags_));
  return compiled;
}

const char* CompiledSandbox::Keep(std::string text) {
  strings_.push_back(std::move(text));
  return strings_.back().c_str();
}

void CompiledSandbox::BuildNamespaces() {
  const Namespaces& ns = policy_.namespaces();
  if (ns.user().enabled()) {
    clone_flags_ |= CLONE_NEWUSER;
    uid_map_ = MapText(ns.user().uid_map(), ns.user().default_map(), getuid());
    gid_map_ = MapText(ns.user().gid_map(), ns.user().default_map(), getgid());
    // Only root with an explicit gid map may keep setgroups for the child.
    deny_setgroups_ = !(geteuid() == 0 && ns.user().gid_map_size() > 0);
    if (ns.user().uid_map_size() > 0 || ns.user().gid_map_size() > 0) {
      // Our host ids may be unmapped inside: take the inside id ours maps
      // to, or the first line's.
      plan_.set_ids = true;
      plan_.clear_groups = !deny_setgroups_;
      plan_.uid = InsideId(ns.user().uid_map(), getuid(), ns.user().default_map());
      plan_.gid = InsideId(ns.user().gid_map(), getgid(), ns.user().default_map());
    }
  }
  if (ns.pid()) clone_flags_ |= CLONE_NEWPID;
  if (ns.mount()) clone_flags_ |= CLONE_NEWNS;
  if (ns.ipc()) clone_flags_ |= CLONE_NEWIPC;
  if (ns.uts()) clone_flags_ |= CLONE_NEWUTS;
  if (ns.net()) clone_flags_ |= CLONE_NEWNET;
  if (ns.cgroup()) clone_flags_ |= CLONE_NEWCGROUP;
  if (ns.time()) clone_flags_ |= CLONE_NEWTIME;
  if (!ns.hostname().empty()) {
    plan_.hostname = Keep(ns.hostname());
    plan_.hostname_length = static_cast<int>(ns.hostname().size());
  }
  plan_.loopback_up = ns.net();
  plan_.pid1_init = ns.reaping_init();
}

void CompiledSandbox::AddMount(MountKind kind, bool read_only, const std::string& source,
                               const std::string& target, const std::string& data) {
  sandbox_child::MountOp op{};
  op.kind = kind;
  op.read_only = read_only;
  op.source = source.empty() ? nullptr : Keep(source);
  op.target = Keep("/newroot" + (target == "/" ? std::string() : target));
  op.data = data.empty() ? nullptr : Keep(data);
  mounts_.push_back(op);
  mount_op_source_.push_back(current_mount_);
}

void CompiledSandbox::BuildMounts() {
  for (const Mount& m : policy_.filesystem().mounts()) {
    ++current_mount_;
    const std::string& target = m.target();
    switch (m.type()) {
      case Mount::BIND_RO:
      case Mount::BIND_RW:
        AddMount(MountKind::kBind, m.type() == Mount::BIND_RO, "/oldroot" + m.source(), target, "");
        break;
      case Mount::TMPFS: {
        std::string data = absl::StrFormat("mode=%o", m.mode() ? m.mode() : 01777);
        if (m.size_bytes() > 0) absl::StrAppend(&data, ",size=", m.size_bytes());
        AddMount(MountKind::kTmpfs, false, "", target, data);
        break;
      }
      case Mount::PROC:
        AddMount(MountKind::kProc, false, "", target, "");
        break;
      case Mount::DEV:
        AddMount(MountKind::kTmpfs, false, "", target, absl::StrFormat("mode=%o", m.mode() ? m.mode() : 0755));
        for (const char* node : {"null", "zero", "full", "random", "urandom", "tty"}) {
          AddMount(MountKind::kBind, false, absl::StrCat("/oldroot/dev/", node),
                   absl::StrCat(target, "/", node), "");
        }
        AddMount(MountKind::kSymlink, false, "/proc/self/fd", target + "/fd", "");
        AddMount(MountKind::kSymlink, false, "/proc/self/fd/0", target + "/stdin", "");
        AddMount(MountKind::kSymlink, false, "/proc/self/fd/1", target + "/stdout", "");
        AddMount(MountKind::kSymlink, false, "/proc/self/fd/2", target + "/stderr", "");
        AddMount(MountKind::kMkdir, false, "", target + "/shm", "");
        break;
      case Mount::SYMLINK:
        AddMount(MountKind::kSymlink, false, m.source(), target, "");
        break;
      default:
        break;  // Rejected by ValidatePolicy.
    }
  }
}

absl::Status CompiledSandbox::Build(const CompileOptions& options) {
  BuildNamespaces();
  if (policy_.filesystem().mounts_size() > 0) {
    plan_.build_view = true;
    plan_.base_dir = Keep(options.base_dir);
    BuildMounts();
    plan_.mounts = mounts_.data();
    plan_.mount_count = static_cast<int>(mounts_.size());
    plan_.read_only_root = policy_.filesystem().read_only_root();
  }
  const ProcessSetup& process = policy_.process();
  if (!process.cwd().empty()) plan_.cwd = Keep(process.cwd());
  if (process.die_with_parent()) plan_.parent_death_signal = SIGKILL;
  for (const Rlimit& limit : policy_.rlimits()) {
    sandbox_child::RlimitOp op{};
    op.resource = *RlimitFromName(limit.name());
    op.value.rlim_cur = limit.soft_unlimited() ? RLIM64_INFINITY : limit.soft();
    op.value.rlim_max = limit.hard_unlimited() ? RLIM64_INFINITY : limit.hard();
    rlimits_.push_back(op);
  }
  if (const uint64_t ms = policy_.limits().cpu_time_ms(); ms > 0) {
    // SIGXCPU at the soft limit, SIGKILL a second later.
    sandbox_child::RlimitOp op{};
    op.resource = RLIMIT_CPU;
    op.value.rlim_cur = (ms + 999) / 1000;
    op.value.rlim_max = op.value.rlim_cur + 1;
    rlimits_.push_back(op);
  }
  plan_.rlimits = rlimits_.data();
  plan_.rlimit_count = static_cast<int>(rlimits_.size());
  plan_.drop_capabilities = true;
  for (const std::string& name : policy_.privileges().keep_capabilities()) {
    plan_.keep_capabilities |= uint64_t{1} << *CapabilityFromName(name);
  }
  plan_.cap_last_cap = CapLastCap();
  plan_.no_new_privs = !policy_.privileges().allow_new_privs();
  if (policy_.has_seccomp()) {
    SANDBOX_ASSIGN_OR_RETURN(filter_, CompileSeccomp(policy_.seccomp()));
    plan_.filter = filter_.data();
    plan_.filter_length = static_cast<unsigned short>(filter_.size());
  }
  return absl::OkStatus();
}

std::string CompiledSandbox::DescribeFailureItem(int32_t step, int32_t index) const {
  using sandbox_child::SandboxStep;
  if (index < 0) return "";
  if (step >= static_cast<int32_t>(SandboxStep::kMountTarget) &&
      step <= static_cast<int32_t>(SandboxStep::kMkdir) &&
      index < static_cast<int32_t>(mount_op_source_.size())) {
    return absl::StrCat("filesystem.mounts[", mount_op_source_[index], "]");
  }
  if (step == static_cast<int32_t>(SandboxStep::kRlimits)) {
    return index < policy_.rlimits_size() ? absl::StrCat("rlimits[", index, "]")
                                          : "limits.cpu_time_ms";
  }
  return absl::StrCat("item ", index);
}

std::vector<std::string> CompiledSandbox::Environment(char* const* host_environ) const {
  std::map<std::string, std::string> values;  // Sorted: a stable environment.
  if (!policy_.process().clear_env() && host_environ != nullptr) {
    for (char* const* entry = host_environ; *entry != nullptr; ++entry) {
      const std::string text = *entry;
      const size_t eq = text.find('=');
      if (eq != std::string::npos) values[text.substr(0, eq)] = text.substr(eq + 1);
    }
  }
  for (const EnvVar& var : policy_.process().env()) values[var.name()] = var.value();
  std::vector<std::string> env;
  for (const auto& [name, value] : values) env.push_back(name + "=" + value);
  return env;
}

}  // namespace sandbox
}  // namespace forkserver
