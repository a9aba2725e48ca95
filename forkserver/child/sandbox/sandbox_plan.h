// File: forkserver/child/sandbox/sandbox_plan.h
// -----------------------------------------------------------------------------
// The plan a sandboxed child follows: plain structs, filled by the parent
// (forkserver/sandbox/compiled_sandbox.h) before fork/clone3, read by the
// async-signal-safe steps in this package after it.
//
// Contract:
//   * Everything is precomputed: paths as NUL-terminated C strings, the
//     uid_map/gid_map text, the BPF program, the rlimits, capability masks.
//     The child only makes syscalls.
//   * Pointers point into storage the parent owns and keeps alive until the
//     child has exec'd (the child has its own copy of that memory).
//   * A failing step writes one SandboxFailure to report_fd and
//     _exit(kSandboxFailedExitCode)s; on success report_fd (O_CLOEXEC) is
//     closed by execve (entry mode: by the caller, just before the entry
//     runs), so the parent reads EOF.
//   * Step numbers start at 100 so they never collide with child_setup's
//     ChildStep numbers on a shared report pipe.

#ifndef FORKSERVER_CHILD_SANDBOX_SANDBOX_PLAN_H_
#define FORKSERVER_CHILD_SANDBOX_SANDBOX_PLAN_H_

#include <linux/filter.h>
#include <sys/resource.h>

#include <cstdint>
#include <type_traits>

namespace forkserver {
namespace sandbox_child {

inline constexpr int kSandboxFailedExitCode = 127;
inline constexpr int kMaxCgroupFds = 4;

enum class SandboxStep : int32_t {
  kNone = 0,
  kJoinCgroup = 100,
  kWaitRelease = 101,
  kParentDeath = 102,
  kMakePrivate = 103,
  kRootTmpfs = 104,
  kPivotToBase = 105,
  kMountTarget = 106,
  kBind = 107,
  kRemountReadOnly = 108,
  kTmpfs = 109,
  kProc = 110,
  kSymlink = 111,
  kMkdir = 112,
  kUmountOldRoot = 113,
  kPivotRoot = 114,
  kReadOnlyRoot = 115,
  kHostname = 116,
  kLoopback = 117,
  kChdir = 118,
  kRlimits = 119,
  kDropCapabilities = 120,
  kNoNewPrivs = 121,
  kSeccomp = 122,
  kCloseFds = 123,
  kExecve = 124,
  kSetupInit = 125,
  kNewProc = 126,
  kSetIds = 127,
  kFreshTmpfs = 128,
  kInstallFds = 129,   // template children: stdio at its numbers
  kResetSignals = 130,
  kNewSession = 131,
  kCloseOthers = 132,  // entry mode: every fd but keep_fds closed
};

// One record, 12 bytes (atomic on a pipe). index: the mount or rlimit the
// step was working on, or -1.
struct SandboxFailure {
  int32_t step;
  int32_t error;
  int32_t index;
};
static_assert(sizeof(SandboxFailure) == 12);

enum class MountKind : int32_t {
  kBind = 1,     // source -> target, MS_BIND|MS_REC; read_only: remount.
  kTmpfs = 2,    // tmpfs at target with data ("size=..,mode=..").
  kProc = 3,     // proc at target.
  kSymlink = 4,  // symlink(source, target).
  kMkdir = 5,    // an empty directory at target.
};

// Paths are absolute in the intermediate root the child builds the view
// in: sources under "/oldroot" (the host's root), targets under "/newroot".
struct MountOp {
  MountKind kind;
  bool read_only;
  const char* source;
  const char* target;
  const char* data;
};

struct RlimitOp {
  int resource;
  struct rlimit64 value;
};

struct SandboxPlan {
  int report_fd = -1;
  // Read end of a pipe: the child waits for one byte (the parent wrote the
  // id maps and anything else it does for the child); -1: no wait.
  int release_fd = -1;
  // Each is an O_CLOEXEC fd on a v1 leaf's cgroup.procs; the child writes
  // "0" (itself) to each before anything else runs.
  int cgroup_procs_fds[kMaxCgroupFds] = {-1, -1, -1, -1};
  int cgroup_fd_count = 0;
  int parent_death_signal = 0;
  // After release: become these ids inside the user namespace (the
  // process's host ids may be unmapped there), dropping supplementary
  // groups when setgroups is allowed.
  bool set_ids = false;
  bool clear_groups = false;
  unsigned int uid = 0;
  unsigned int gid = 0;

  // Filesystem view (needs a mount namespace).
  bool build_view = false;
  const char* base_dir = "/tmp";  // Existing host dir the base tmpfs covers.
  const MountOp* mounts = nullptr;
  int mount_count = 0;
  bool read_only_root = false;
  // Per-child /proc for a per-child pid namespace (template children).
  const char* fresh_proc = nullptr;
  // Per-child fresh tmpfs (e.g. /tmp) over the template's, mode 01777.
  const char* fresh_tmpfs = nullptr;
  // Its mount data ("mode=..,size=..", the policy's); null: mode=1777.
  const char* fresh_tmpfs_data = nullptr;
  // A reaping pid 1: the child forks the payload, reaps every orphan, and
  // exits with the payload's exit code (128+N for signal N).
  bool pid1_init = false;

  const char* hostname = nullptr;
  int hostname_length = 0;
  bool loopback_up = false;
  const char* cwd = nullptr;

  const RlimitOp* rlimits = nullptr;
  int rlimit_count = 0;

  bool drop_capabilities = false;
  uint64_t keep_capabilities = 0;  // Bit N: capability N.
  int cap_last_cap = 40;           // /proc/sys/kernel/cap_last_cap.

  bool no_new_privs = true;
  const struct sock_filter* filter = nullptr;
  unsigned short filter_length = 0;

  // Exec mode when exec_path is set (NULL-terminated argv/envp).
  const char* exec_path = nullptr;
  char* const* exec_argv = nullptr;
  char* const* exec_envp = nullptr;

  // Entry mode (exec_path null): the descriptors the entry keeps (its
  // channel to the client, at their numbers, and report_fd until the
  // caller closes it); every other one above 2 is closed before the
  // reaping init starts and before the filter is loaded, so nothing of
  // the template (its socket to the server) reaches the entry.
  const int* keep_fds = nullptr;
  int keep_fd_count = 0;
};
static_assert(std::is_trivially_copyable_v<SandboxPlan>);
static_assert(std::is_trivially_destructible_v<SandboxPlan>);
static_assert(std::is_trivially_copyable_v<MountOp>);

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_SANDBOX_PLAN_H_
