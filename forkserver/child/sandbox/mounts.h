// File: forkserver/child/sandbox/mounts.h
// async-signal-safe: runs after fork, in a new mount namespace.
//
// Builds the filesystem view, bubblewrap's way:
//   make_private    mount("/", MS_REC|MS_PRIVATE): nothing propagates out
//   root_tmpfs      a fresh tmpfs on plan.base_dir
//   pivot_to_base   pivot_root into it: the host root is now /oldroot and
//                   the view is built under /newroot (a bind of a dir in it)
//   per MountOp     mount_target (create target and its parents, never
//                   through a symlink), then bind / remount_read_only /
//                   tmpfs / proc / symlink / mkdir
//   umount_old_root umount2("/oldroot", MNT_DETACH)
//   pivot_root      pivot_root(".", ".") in /newroot, then detach the old
//                   one: nothing unlisted is reachable
//   read_only_root  (when asked) the new root mount read-only
// Every failure is reported with FailStep (index: the MountOp) and exits.

#ifndef FORKSERVER_CHILD_SANDBOX_MOUNTS_H_
#define FORKSERVER_CHILD_SANDBOX_MOUNTS_H_

#include "forkserver/child/sandbox/sandbox_plan.h"

namespace forkserver {
namespace sandbox_child {

void BuildFilesystemViewAsyncSafe(const SandboxPlan& plan);

// A fresh proc at path (a per-child pid namespace's own /proc). Exits
// through FailStep(kNewProc) on failure.
void MountFreshProcAsyncSafe(const SandboxPlan& plan, const char* path);

// A fresh tmpfs (mode 01777) over path, for a template child's own /tmp.
// Exits through FailStep(kFreshTmpfs) on failure.
void MountFreshTmpfsAsyncSafe(const SandboxPlan& plan, const char* path);

}  // namespace sandbox_child
}  // namespace forkserver

#endif  // FORKSERVER_CHILD_SANDBOX_MOUNTS_H_
