// async-signal-safe: runs after fork. One raw syscall.

#include "forkserver/child/sandbox/seccomp.h"

#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace forkserver {
namespace sandbox_child {

int LoadSeccompFilterAsyncSafe(const SandboxPlan& plan) {
  struct sock_fprog program = {};
  program.len = plan.filter_length;
  program.filter = const_cast<struct sock_filter*>(plan.filter);
  // No TSYNC: the child is single-threaded (it was just forked).
  return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &program) == 0 ? 0 : errno;
}

}  // namespace sandbox_child
}  // namespace forkserver
