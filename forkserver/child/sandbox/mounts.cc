// async-signal-safe: runs after fork. Raw syscalls, stack buffers, index
// loops: no malloc, no stdio, no locks, no exceptions.

#include "forkserver/child/sandbox/mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "forkserver/child/sandbox/report.h"

namespace forkserver {
namespace sandbox_child {
namespace {

constexpr unsigned long kProcFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;

// Opens (creating when missing) each directory of `path` below "/" with
// O_NOFOLLOW, so a symlink planted in a bound directory cannot redirect a
// mount target outside the view. Returns the fd of the parent directory
// of the last component and points *last at that component; -1 (errno).
int OpenParentNoFollow(const char* path, const char** last) {
  int dir = ::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return -1;
  const char* p = path;
  while (*p == '/') ++p;
  while (true) {
    const char* end = p;
    while (*end != '\0' && *end != '/') ++end;
    const char* next = end;
    while (*next == '/') ++next;
    if (*next == '\0') {  // p..end is the last component.
      *last = p;
      return dir;
    }
    char name[256];
    const long length = end - p;
    if (length <= 0 || length >= static_cast<long>(sizeof(name))) {
      ::close(dir);
      errno = ENAMETOOLONG;
      return -1;
    }
    __builtin_memcpy(name, p, static_cast<size_t>(length));
    name[length] = '\0';
    if (::mkdirat(dir, name, 0755) != 0 && errno != EEXIST) {
      const int error = errno;
      ::close(dir);
      errno = error;
      return -1;
    }
    const int child = ::openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    const int error = errno;
    ::close(dir);
    if (child < 0) {
      errno = error;
      return -1;
    }
    dir = child;
    p = next;
  }
}

// Creates the target (a directory, or an empty file to bind a file onto)
// unless it exists. 0 or an errno.
int CreateTarget(const char* target, bool directory) {
  const char* last = nullptr;
  const int dir = OpenParentNoFollow(target, &last);
  if (dir < 0) return errno;
  char name[256];
  int n = 0;
  while (last[n] != '\0' && last[n] != '/' && n < 255) {
    name[n] = last[n];
    ++n;
  }
  name[n] = '\0';
  int error = 0;
  if (directory) {
    if (::mkdirat(dir, name, 0755) != 0 && errno != EEXIST) error = errno;
    if (error == 0) {  // Exists: it must be a real directory, not a link.
      const int check = ::openat(dir, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (check < 0) error = errno;
      else ::close(check);
    }
  } else {
    // O_RDONLY: an existing file on a read-only bind needs no write access.
    const int file = ::openat(dir, name, O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (file < 0) error = errno;
    else ::close(file);
  }
  ::close(dir);
  return error;
}

// Read-only, recursively, with mount_setattr: it only sets RDONLY, so the
// flags the kernel locks in a user namespace (nosuid, nodev, noexec, atime)
// are kept. Before 5.12, a MS_REMOUNT that repeats those flags (bwrap's
// way, read with statfs) on the top mount.
int MakeReadOnly(const char* target) {
  struct mount_attr attr = {};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  if (::syscall(SYS_mount_setattr, AT_FDCWD, target, AT_RECURSIVE | AT_SYMLINK_NOFOLLOW,
                &attr, sizeof(attr)) == 0) {
    return 0;
  }
  if (errno != ENOSYS) return errno;
  struct statfs info;
  if (::statfs(target, &info) != 0) return errno;
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (info.f_flags & ST_NOSUID) flags |= MS_NOSUID;
  if (info.f_flags & ST_NODEV) flags |= MS_NODEV;
  if (info.f_flags & ST_NOEXEC) flags |= MS_NOEXEC;
  if (info.f_flags & ST_NOATIME) flags |= MS_NOATIME;
  if (info.f_flags & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (info.f_flags & ST_RELATIME) flags |= MS_RELATIME;
  return ::mount("none", target, nullptr, flags, nullptr) == 0 ? 0 : errno;
}

void RunMountOp(const SandboxPlan& plan, const MountOp& op, int index) {
  const int fd = plan.report_fd;
  bool directory = op.kind != MountKind::kSymlink;
  if (op.kind == MountKind::kBind) {
    struct stat info;
    if (::stat(op.source, &info) != 0) FailStep(fd, SandboxStep::kBind, errno, index);
    directory = S_ISDIR(info.st_mode);
  }
  if (op.kind == MountKind::kSymlink) {
    const char* last = nullptr;
    const int dir = OpenParentNoFollow(op.target, &last);
    if (dir < 0) FailStep(fd, SandboxStep::kMountTarget, errno, index);
    ::close(dir);
    if (::symlink(op.source, op.target) != 0 && errno != EEXIST) {
      FailStep(fd, SandboxStep::kSymlink, errno, index);
    }
    return;
  }
  if (int error = CreateTarget(op.target, directory); error != 0) {
    FailStep(fd, SandboxStep::kMountTarget, error, index);
  }
  switch (op.kind) {
    case MountKind::kBind:
      if (::mount(op.source, op.target, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
        FailStep(fd, SandboxStep::kBind, errno, index);
      }
      if (op.read_only) {
        if (int error = MakeReadOnly(op.target); error != 0) {
          FailStep(fd, SandboxStep::kRemountReadOnly, error, index);
        }
      }
      return;
    case MountKind::kTmpfs:
      if (::mount("tmpfs", op.target, "tmpfs", MS_NOSUID | MS_NODEV, op.data) != 0) {
        FailStep(fd, SandboxStep::kTmpfs, errno, index);
      }
      return;
    case MountKind::kProc:
      if (::mount("proc", op.target, "proc", kProcFlags, nullptr) != 0) {
        FailStep(fd, SandboxStep::kProc, errno, index);
      }
      return;
    case MountKind::kMkdir:
    case MountKind::kSymlink:
      return;
  }
}

// Into the base tmpfs, keeping the host root at /oldroot (bubblewrap's
// setup): sources stay reachable while the view is built under /newroot.
void PivotToBase(const SandboxPlan& plan) {
  const int fd = plan.report_fd;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    FailStep(fd, SandboxStep::kMakePrivate, errno);
  }
  if (::mount("tmpfs", plan.base_dir, "tmpfs", MS_NODEV | MS_NOSUID, "mode=0755") != 0) {
    FailStep(fd, SandboxStep::kRootTmpfs, errno);
  }
  if (::chdir(plan.base_dir) != 0 || ::mkdir("newroot", 0755) != 0 ||
      ::mount("newroot", "newroot", nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
      ::mkdir("oldroot", 0755) != 0) {
    FailStep(fd, SandboxStep::kRootTmpfs, errno);
  }
  if (::syscall(SYS_pivot_root, plan.base_dir, "oldroot") != 0 || ::chdir("/") != 0) {
    FailStep(fd, SandboxStep::kPivotToBase, errno);
  }
}

}  // namespace

void BuildFilesystemViewAsyncSafe(const SandboxPlan& plan) {
  const int fd = plan.report_fd;
  PivotToBase(plan);
  for (int i = 0; i < plan.mount_count; ++i) RunMountOp(plan, plan.mounts[i], i);
  if (::umount2("/oldroot", MNT_DETACH) != 0) FailStep(fd, SandboxStep::kUmountOldRoot, errno);
  // pivot_root(".", ".") stacks the old root under the new one; detaching
  // "." then drops it, leaving only the view (bwrap does the same).
  if (::chdir("/newroot") != 0 || ::syscall(SYS_pivot_root, ".", ".") != 0 ||
      ::umount2(".", MNT_DETACH) != 0 || ::chdir("/") != 0) {
    FailStep(fd, SandboxStep::kPivotRoot, errno);
  }
  if (plan.read_only_root) {
    struct mount_attr attr = {};
    attr.attr_set = MOUNT_ATTR_RDONLY;
    if (::syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &attr, sizeof(attr)) != 0) {
      FailStep(fd, SandboxStep::kReadOnlyRoot, errno);
    }
  }
}

void MountFreshProcAsyncSafe(const SandboxPlan& plan, const char* path) {
  if (::mount("proc", path, "proc", kProcFlags, nullptr) != 0) {
    FailStep(plan.report_fd, SandboxStep::kNewProc, errno);
  }
}

void MountFreshTmpfsAsyncSafe(const SandboxPlan& plan, const char* path) {
  const char* data = plan.fresh_tmpfs_data != nullptr ? plan.fresh_tmpfs_data : "mode=1777";
  if (::mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, data) != 0) {
    FailStep(plan.report_fd, SandboxStep::kFreshTmpfs, errno);
  }
}

}  // namespace sandbox_child
}  // namespace forkserver
