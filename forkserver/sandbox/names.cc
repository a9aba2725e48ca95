#include "forkserver/sandbox/names.h"

#include <linux/capability.h>
#include <sys/resource.h>

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace forkserver {
namespace sandbox {
namespace {

struct Named {
  const char* name;
  int value;
};

constexpr Named kRlimits[] = {
    {"as", RLIMIT_AS},         {"core", RLIMIT_CORE},
    {"cpu", RLIMIT_CPU},       {"data", RLIMIT_DATA},
    {"fsize", RLIMIT_FSIZE},   {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE},
    {"nice", RLIMIT_NICE},     {"nofile", RLIMIT_NOFILE},
    {"nproc", RLIMIT_NPROC},   {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO}, {"rttime", RLIMIT_RTTIME},
    {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
};

constexpr Named kCapabilities[] = {
    {"chown", CAP_CHOWN}, {"dac_override", CAP_DAC_OVERRIDE},
    {"dac_read_search", CAP_DAC_READ_SEARCH}, {"fowner", CAP_FOWNER},
    {"fsetid", CAP_FSETID}, {"kill", CAP_KILL}, {"setgid", CAP_SETGID},
    {"setuid", CAP_SETUID}, {"setpcap", CAP_SETPCAP},
    {"linux_immutable", CAP_LINUX_IMMUTABLE},
    {"net_bind_service", CAP_NET_BIND_SERVICE},
    {"net_broadcast", CAP_NET_BROADCAST}, {"net_admin", CAP_NET_ADMIN},
    {"net_raw", CAP_NET_RAW}, {"ipc_lock", CAP_IPC_LOCK},
    {"ipc_owner", CAP_IPC_OWNER}, {"sys_module", CAP_SYS_MODULE},
    {"sys_rawio", CAP_SYS_RAWIO}, {"sys_chroot", CAP_SYS_CHROOT},
    {"sys_ptrace", CAP_SYS_PTRACE}, {"sys_pacct", CAP_SYS_PACCT},
    {"sys_admin", CAP_SYS_ADMIN}, {"sys_boot", CAP_SYS_BOOT},
    {"sys_nice", CAP_SYS_NICE}, {"sys_resource", CAP_SYS_RESOURCE},
    {"sys_time", CAP_SYS_TIME}, {"sys_tty_config", CAP_SYS_TTY_CONFIG},
    {"mknod", CAP_MKNOD}, {"lease", CAP_LEASE}, {"audit_write", CAP_AUDIT_WRITE},
    {"audit_control", CAP_AUDIT_CONTROL}, {"setfcap", CAP_SETFCAP},
    {"mac_override", CAP_MAC_OVERRIDE}, {"mac_admin", CAP_MAC_ADMIN},
    {"syslog", CAP_SYSLOG}, {"wake_alarm", CAP_WAKE_ALARM},
    {"block_suspend", CAP_BLOCK_SUSPEND}, {"audit_read", CAP_AUDIT_READ},
    {"perfmon", CAP_PERFMON}, {"bpf", CAP_BPF},
    {"checkpoint_restore", CAP_CHECKPOINT_RESTORE},
};

template <size_t N>
std::optional<int> Lookup(const Named (&table)[N], absl::string_view prefix,
                          absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  absl::string_view key = lower;
  absl::ConsumePrefix(&key, prefix);
  for (const Named& entry : table) {
    if (key == entry.name) return entry.value;
  }
  return std::nullopt;
}

}  // namespace

std::optional<int> RlimitFromName(absl::string_view name) {
  return Lookup(kRlimits, "rlimit_", name);
}

std::optional<int> CapabilityFromName(absl::string_view name) {
  return Lookup(kCapabilities, "cap_", name);
}

}  // namespace sandbox
}  // namespace forkserver
