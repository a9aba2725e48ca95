#include "forkserver/sandbox/host_probe.h"

#include <linux/sched.h>
#include <sched.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace forkserver {
namespace sandbox {

std::string DescribeNamespaceFlags(uint64_t flags) {
  std::vector<std::string> names;
  if (flags & CLONE_NEWUSER) names.push_back("user");
  if (flags & CLONE_NEWPID) names.push_back("pid");
  if (flags & CLONE_NEWNS) names.push_back("mount");
  if (flags & CLONE_NEWIPC) names.push_back("ipc");
  if (flags & CLONE_NEWUTS) names.push_back("uts");
  if (flags & CLONE_NEWNET) names.push_back("net");
  if (flags & CLONE_NEWCGROUP) names.push_back("cgroup");
  if (flags & CLONE_NEWTIME) names.push_back("time");
  return absl::StrJoin(names, " ");
}

absl::Status NamespacesNotPossible(uint64_t clone_flags, int error) {
  return absl::FailedPreconditionError(absl::StrCat(
      "sandbox step 'namespaces' not possible on this host: clone3(",
      DescribeNamespaceFlags(clone_flags), ") failed: ", std::strerror(error),
      error == EPERM || error == ENOSPC
          ? " (user namespaces disabled or exhausted, or the caller lacks privilege)"
          : ""));
}

absl::Status ProbeNamespaces(uint64_t clone_flags) {
  if (clone_flags == 0) return absl::OkStatus();
  struct clone_args args = {};
  args.flags = clone_flags;
  args.exit_signal = SIGCHLD;
  const long pid = syscall(SYS_clone3, &args, sizeof(args));
  if (pid == 0) _exit(0);  // The child: nothing to do; only its birth mattered.
  if (pid < 0) return NamespacesNotPossible(clone_flags, errno);
  int status = 0;
  while (waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
  }
  return absl::OkStatus();
}

}  // namespace sandbox
}  // namespace forkserver
