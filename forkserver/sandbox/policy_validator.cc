#include "forkserver/sandbox/policy_validator.h"

#include <seccomp.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "forkserver/sandbox/names.h"
#include "forkserver/sandbox/status_macros.h"

namespace forkserver {
namespace sandbox {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Absolute, and no "." or ".." component: a target means one place.
bool IsCleanAbsolute(absl::string_view path) {
  if (!absl::StartsWith(path, "/")) return false;
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "." || part == "..") return false;
  }
  return true;
}

absl::Status ValidateNamespaces(const Namespaces& ns) {
  const UserNamespace& user = ns.user();
  if (!user.enabled()) {
    if (user.uid_map_size() > 0) return Invalid("namespaces.user.uid_map", "needs namespaces.user.enabled");
    if (user.gid_map_size() > 0) return Invalid("namespaces.user.gid_map", "needs namespaces.user.enabled");
    if (user.default_map() != UserNamespace::DEFAULT_MAP_UNSPECIFIED) {
      return Invalid("namespaces.user.default_map", "needs namespaces.user.enabled");
    }
  }
  if (!ns.hostname().empty() && !ns.uts()) return Invalid("namespaces.hostname", "needs namespaces.uts");
  if (ns.hostname().size() > 64) return Invalid("namespaces.hostname", "longer than 64 bytes");
  if (ns.reaping_init() && !ns.pid()) return Invalid("namespaces.reaping_init", "needs namespaces.pid");
  return absl::OkStatus();
}

absl::Status ValidateMount(const Policy& policy, const Mount& mount, int index) {
  const std::string field = absl::StrCat("filesystem.mounts[", index, "]");
  if (mount.type() == Mount::TYPE_UNSPECIFIED) return Invalid(field + ".type", "unspecified");
  if (!IsCleanAbsolute(mount.target())) {
    return Invalid(field + ".target", absl::StrCat("\"", mount.target(), "\" is not a clean absolute path"));
  }
  const bool bind = mount.type() == Mount::BIND_RO || mount.type() == Mount::BIND_RW;
  if (bind && !IsCleanAbsolute(mount.source())) {
    return Invalid(field + ".source", absl::StrCat("\"", mount.source(), "\" is not a clean absolute path"));
  }
  if (mount.type() == Mount::SYMLINK && mount.source().empty()) {
    return Invalid(field + ".source", "a symlink needs its text");
  }
  if (mount.size_bytes() != 0 && mount.type() != Mount::TMPFS) {
    return Invalid(field + ".size_bytes", "only for TMPFS");
  }
  if (mount.type() == Mount::PROC && !policy.namespaces().pid()) {
    return Invalid(field, "PROC needs namespaces.pid (it would show the host's processes)");
  }
  return absl::OkStatus();
}

absl::Status ValidateFilesystem(const Policy& policy) {
  const Filesystem& fs = policy.filesystem();
  if (fs.mounts_size() > 0 && !policy.namespaces().mount()) {
    return Invalid("filesystem.mounts", "needs namespaces.mount");
  }
  if (fs.read_only_root() && fs.mounts_size() == 0) {
    return Invalid("filesystem.read_only_root", "needs filesystem.mounts");
  }
  for (int i = 0; i < fs.mounts_size(); ++i) {
    SANDBOX_RETURN_IF_ERROR(ValidateMount(policy, fs.mounts(i), i));
  }
  return absl::OkStatus();
}

absl::Status ValidateAction(const Seccomp::Action& action, absl::string_view field) {
  if (action.type() == Seccomp::ACTION_UNSPECIFIED) return Invalid(absl::StrCat(field, ".type"), "unspecified");
  if (action.type() == Seccomp::ERRNO) {
    if (action.errno_value() < 1 || action.errno_value() > 4095) {
      return Invalid(absl::StrCat(field, ".errno_value"), "must be 1..4095");
    }
  } else if (action.errno_value() != 0) {
    return Invalid(absl::StrCat(field, ".errno_value"), "only for ERRNO");
  }
  return absl::OkStatus();
}

absl::Status ValidateSeccomp(const Seccomp& seccomp) {
  SANDBOX_RETURN_IF_ERROR(ValidateAction(seccomp.default_action(), "seccomp.default_action"));
  for (int i = 0; i < seccomp.rules_size(); ++i) {
    const Seccomp::Rule& rule = seccomp.rules(i);
    const std::string field = absl::StrCat("seccomp.rules[", i, "]");
    if (seccomp_syscall_resolve_name(rule.syscall().c_str()) == __NR_SCMP_ERROR) {
      return Invalid(field + ".syscall", absl::StrCat("unknown syscall \"", rule.syscall(), "\""));
    }
    SANDBOX_RETURN_IF_ERROR(ValidateAction(rule.action(), field + ".action"));
    // The filter is loaded just before execve, which must get through.
    if ((rule.syscall() == "execve" || rule.syscall() == "execveat") &&
        rule.action().type() != Seccomp::ALLOW && rule.action().type() != Seccomp::LOG) {
      return Invalid(field, "execve and execveat must stay allowed (the filter is loaded before exec)");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateRest(const Policy& policy) {
  for (int i = 0; i < policy.rlimits_size(); ++i) {
    const Rlimit& limit = policy.rlimits(i);
    const std::string field = absl::StrCat("rlimits[", i, "]");
    if (!RlimitFromName(limit.name())) {
      return Invalid(field + ".name", absl::StrCat("unknown rlimit \"", limit.name(), "\""));
    }
    if (!limit.hard_unlimited() && (limit.soft_unlimited() || limit.soft() > limit.hard())) {
      return Invalid(field, "soft above hard");
    }
  }
  const Privileges& privileges = policy.privileges();
  for (int i = 0; i < privileges.keep_capabilities_size(); ++i) {
    if (!CapabilityFromName(privileges.keep_capabilities(i))) {
      return Invalid(absl::StrCat("privileges.keep_capabilities[", i, "]"),
                     absl::StrCat("unknown capability \"", privileges.keep_capabilities(i), "\""));
    }
  }
  const ProcessSetup& process = policy.process();
  for (int i = 0; i < process.env_size(); ++i) {
    const std::string& name = process.env(i).name();
    if (name.empty() || absl::StrContains(name, '=') || absl::StrContains(name, '\0')) {
      return Invalid(absl::StrCat("process.env[", i, "].name"), "empty or has '=' or NUL");
    }
  }
  if (!process.cwd().empty() && !IsCleanAbsolute(process.cwd())) {
    return Invalid("process.cwd", "not a clean absolute path");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidatePolicy(const Policy& policy) {
  SANDBOX_RETURN_IF_ERROR(ValidateNamespaces(policy.namespaces()));
  SANDBOX_RETURN_IF_ERROR(ValidateFilesystem(policy));
  if (policy.has_seccomp()) SANDBOX_RETURN_IF_ERROR(ValidateSeccomp(policy.seccomp()));
  return ValidateRest(policy);
}

}  // namespace sandbox
}  // namespace forkserver
