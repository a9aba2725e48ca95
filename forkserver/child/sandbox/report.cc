// async-signal-safe: runs after fork. Only write(2) and _exit(2).

#include "forkserver/child/sandbox/report.h"

#include <unistd.h>

#include <cerrno>

namespace forkserver {
namespace sandbox_child {

void FailStep(int report_fd, SandboxStep step, int error, int index) {
  const SandboxFailure failure{static_cast<int32_t>(step), error, index};
  while (::write(report_fd, &failure, sizeof(failure)) < 0 && errno == EINTR) {
  }
  ::_exit(kSandboxFailedExitCode);
}

const char* SandboxStepName(int32_t step) {
  static constexpr const char* kNames[] = {
      "join_cgroup",  "wait_release",  "parent_death",     "make_private",
      "root_tmpfs",   "pivot_to_base", "mount_target",     "bind",
      "remount_read_only", "tmpfs",    "proc",             "symlink",
      "mkdir",        "umount_old_root", "pivot_root",     "read_only_root",
      "hostname",     "loopback",      "chdir",            "rlimits",
      "drop_capabilities", "no_new_privs", "seccomp",      "close_fds",
      "execve",       "setup_init",    "new_proc",         "set_ids",  "fresh_tmpfs",
      "install_fds",  "reset_signals", "new_session", "close_others"};
  const int32_t first = static_cast<int32_t>(SandboxStep::kJoinCgroup);
  const int32_t count = static_cast<int32_t>(sizeof(kNames) / sizeof(kNames[0]));
  if (step < first || step >= first + count) return "unknown";
  return kNames[step - first];
}

}  // namespace sandbox_child
}  // namespace forkserver
