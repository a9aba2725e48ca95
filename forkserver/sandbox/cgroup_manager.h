// File: forkserver/sandbox/cgroup_manager.h
// -----------------------------------------------------------------------------
// cgroups for sandboxed children: memory, pids and CPU limits, the memory
// peak, and whether the OOM killer or the pids limit struck.
//
// Where: cgroup v2 when the caller's v2 cgroup offers every controller
// needed (the child is then placed at birth with clone3(CLONE_INTO_CGROUP)
// on leaf->v2_dir_fd()); otherwise the v1 hierarchies (this project's
// hybrid hosts), where the child writes "0" into each leaf's cgroup.procs
// (leaf->v1_procs_fds()) as its first step, before any of its own code.
//
// Ownership: everything is created under a parent of our own,
// "forkserver-<uid>-<pid>", made inside the cgroup the process already is
// in when that is writable (so the caller's own limits still bound it),
// else at the controller's root. Leaves are "leaf-<n>" below it. A leaf is
// removed (its remaining tasks killed first) when the CgroupLeaf goes; the
// parent when the manager goes. Nothing we did not create is touched.
//
// Not thread-safe; one manager per process that launches.

#ifndef FORKSERVER_SANDBOX_CGROUP_MANAGER_H_
#define FORKSERVER_SANDBOX_CGROUP_MANAGER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/sandbox.pb.h"

namespace forkserver {
namespace sandbox {

class CgroupLeaf {
 public:
  ~CgroupLeaf();
  CgroupLeaf(const CgroupLeaf&) = delete;
  CgroupLeaf& operator=(const CgroupLeaf&) = delete;

  bool is_v2() const { return v2_; }
  int v2_dir_fd() const { return v2_dir_fd_; }
  // O_WRONLY|O_CLOEXEC fds on each v1 leaf's cgroup.procs.
  const std::vector<int>& v1_procs_fds() const { return procs_fds_; }

  // Peak memory in bytes (memory.max_usage_in_bytes / memory.peak).
  std::optional<uint64_t> MemoryPeak() const;
  // The OOM killer killed a task here (oom_kill in memory.oom_control or
  // memory.events), or the limit was hit (failcnt) on kernels without it.
  bool OomKilled() const;
  // A fork failed at pids.max ("max" in pids.events).
  bool PidsLimitHit() const;

  // SIGKILLs whatever is left, then removes the directories. Idempotent.
  absl::Status Remove();

 private:
  friend class CgroupManager;
  CgroupLeaf() = default;
  std::string memory_dir_, pids_dir_, cpu_dir_;  // Empty: not limited.
  std::vector<std::string> dirs_;                // Every dir we made.
  std::vector<int> procs_fds_;
  int v2_dir_fd_ = -1;
  bool v2_ = false;
};

class CgroupManager {
 public:
  // FAILED_PRECONDITION naming the step ("cgroup_memory", ...) when a
  // controller the limits need is missing or not writable.
  static absl::StatusOr<std::unique_ptr<CgroupManager>> Create(const Limits& limits);
  ~CgroupManager();
  CgroupManager(const CgroupManager&) = delete;
  CgroupManager& operator=(const CgroupManager&) = delete;

  // True when the limits need no cgroup at all.
  static bool Needed(const Limits& limits);

  // A fresh leaf with the limits written.
  absl::StatusOr<std::unique_ptr<CgroupLeaf>> CreateLeaf(const Limits& limits);

  bool is_v2() const { return !v2_parent_.empty(); }
  // The parent directories this manager uses (one per v1 controller, or
  // the v2 one), "forkserver-<uid>-<pid>".
  std::vector<std::string> parents() const;

  // Removes the parents that servers of our uid left behind when they
  // were killed (SIGKILL skips the destructor): siblings named
  // "forkserver-<uid>-<pid>" in `base` whose pid is gone, with their
  // leaves. Only empty cgroups can be removed (rmdir refuses the others),
  // so nothing that still holds a process is touched; nor is anything of
  // another uid, or not of that name. Returns how many were removed.
  static int ReclaimStaleParents(const std::string& base);

 private:
  CgroupManager() = default;
  absl::Status SetUp(const Limits& limits);
  absl::StatusOr<std::string> OwnParent(const std::string& step, const std::string& mount,
                                        const std::string& own_path);
  std::string v2_parent_;
  std::string memory_parent_, pids_parent_, cpu_parent_;
  std::vector<std::string> created_;
  uint64_t next_leaf_ = 0;
};

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_CGROUP_MANAGER_H_
