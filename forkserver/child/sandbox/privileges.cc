// async-signal-safe: runs after fork. Raw syscalls only (capget/capset
// directly, not libcap, which allocates).

#include "forkserver/child/sandbox/privileges.h"

#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace forkserver {
namespace sandbox_child {
namespace {

bool HasEffective(int cap) {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

}  // namespace

int ApplyRlimitsAsyncSafe(const SandboxPlan& plan, int* failed_index) {
  for (int i = 0; i < plan.rlimit_count; ++i) {
    const RlimitOp& op = plan.rlimits[i];
    if (::syscall(SYS_prlimit64, 0, op.resource, &op.value, nullptr) != 0) {
      *failed_index = i;
      return errno;
    }
  }
  return 0;
}

int DropCapabilitiesAsyncSafe(const SandboxPlan& plan) {
  const uint64_t keep = plan.keep_capabilities;
  const bool can_drop_bounding = HasEffective(CAP_SETPCAP);
  if (!can_drop_bounding && !plan.no_new_privs) return EPERM;
  if (can_drop_bounding) {
    for (int cap = 0; cap <= plan.cap_last_cap && cap < 64; ++cap) {
      if (keep & (uint64_t{1} << cap)) continue;
      if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0) return errno;
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  for (int word = 0; word < 2; ++word) {
    const uint32_t bits = static_cast<uint32_t>(keep >> (32 * word));
    data[word].effective = bits;
    data[word].permitted = bits;
    data[word].inheritable = bits;
  }
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  for (int cap = 0; cap <= plan.cap_last_cap && cap < 64; ++cap) {
    if (!(keep & (uint64_t{1} << cap))) continue;
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0) return errno;
  }
  return 0;
}

int SetNoNewPrivsAsyncSafe() {
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? 0 : errno;
}

}  // namespace sandbox_child
}  // namespace forkserver
