// CgroupManager::CreateLeaf and CgroupLeaf: one child's cgroups.

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/strings/ascii.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/cgroup_files.h"
#include "forkserver/sandbox/status_macros.h"

namespace forkserver {
namespace sandbox {
namespace {

uint64_t Key(const std::string& path, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(ReadCgroupFile(path).value_or(""), '\n')) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    uint64_t value = 0;
    if (parts.size() == 2 && parts[0] == key && absl::SimpleAtoi(parts[1], &value)) return value;
  }
  return 0;
}

std::optional<uint64_t> Number(const std::string& path) {
  uint64_t value = 0;
  const std::optional<std::string> text = ReadCgroupFile(path);
  if (!text || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) return std::nullopt;
  return value;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CgroupLeaf>> CgroupManager::CreateLeaf(const Limits& limits) {
  std::unique_ptr<CgroupLeaf> leaf(new CgroupLeaf());
  const std::string name = absl::StrCat("/leaf-", next_leaf_++);
  auto make = [&](const std::string& parent, std::string* dir) -> absl::Status {
    *dir = parent + name;
    if (mkdir(dir->c_str(), 0755) != 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("sandbox step 'cgroup_leaf' failed: mkdir ", *dir, ": ", std::strerror(errno)));
    }
    leaf->dirs_.push_back(*dir);
    return absl::OkStatus();
  };
  const std::string quota = absl::StrCat(uint64_t{limits.cpu_millicores()} * 100);
  if (is_v2()) {
    std::string dir;
    SANDBOX_RETURN_IF_ERROR(make(v2_parent_, &dir));
    leaf->v2_ = true;
    leaf->memory_dir_ = leaf->pids_dir_ = leaf->cpu_dir_ = dir;
    if (limits.memory_bytes() > 0) {
      SANDBOX_RETURN_IF_ERROR(WriteCgroupFile(dir + "/memory.max", absl::StrCat(limits.memory_bytes())));
      (void)WriteCgroupFile(dir + "/memory.swap.max", "0");  // Absent without swap accounting.
    }
    if (limits.pids_max() > 0) SANDBOX_RETURN_IF_ERROR(WriteCgroupFile(dir + "/pids.max", absl::StrCat(limits.pids_max())));
    if (limits.cpu_millicores() > 0) SANDBOX_RETURN_IF_ERROR(WriteCgroupFile(dir + "/cpu.max", quota + " 100000"));
    leaf->v2_dir_fd_ = open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (leaf->v2_dir_fd_ < 0) return absl::ErrnoToStatus(errno, "open " + dir);
    return leaf;
  }
  if (limits.memory_bytes() > 0) {
    SANDBOX_RETURN_IF_ERROR(make(memory_parent_, &leaf->memory_dir_));
    const std::string bytes = absl::StrCat(limits.memory_bytes());
    SANDBOX_RETURN_IF_ERROR(WriteCgroupFile(leaf->memory_dir_ + "/memory.limit_in_bytes", bytes));
    // With swap accounting, swap must not extend the limit.
    if (access((leaf->memory_dir_ + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0) {
      SANDBOX_RETURN_IF_ERROR(WriteCgroupFile(leaf->memory_dir_ + "/memory.memsw.limit_in_bytes", bytes));
    }
  }
  if (limits.pids_max() > 0) {
    SANDBOX_RETURN_IF_ERROR(make(pids_parent_, &leaf->pids_dir_));
    SANDBOX_RETURN_IF_ERROR(WriteCgroupFile(leaf->pids_dir_ + "/pids.max", absl::StrCat(limits.pids_max())));
  }
  if (limits.cpu_millicores() > 0) {
    SANDBOX_RETURN_IF_ERROR(make(cpu_parent_, &leaf->cpu_dir_));
    SANDBOX_RETURN_IF_ERROR(WriteCgroupFile(leaf->cpu_dir_ + "/cpu.cfs_period_us", "100000"));
    SANDBOX_RETURN_IF_ERROR(WriteCgroupFile(leaf->cpu_dir_ + "/cpu.cfs_quota_us", quota));
  }
  for (const std::string& dir : leaf->dirs_) {
    const int fd = open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return absl::ErrnoToStatus(errno, "open " + dir + "/cgroup.procs");
    leaf->procs_fds_.push_back(fd);
  }
  return leaf;
}

std::optional<uint64_t> CgroupLeaf::MemoryPeak() const {
  if (memory_dir_.empty()) return std::nullopt;
  return Number(memory_dir_ + (is_v2() ? "/memory.peak" : "/memory.max_usage_in_bytes"));
}

bool CgroupLeaf::OomKilled() const {
  if (memory_dir_.empty()) return false;
  if (is_v2()) return Key(memory_dir_ + "/memory.events", "oom_kill") > 0;
  const std::string control = memory_dir_ + "/memory.oom_control";
  if (ReadCgroupFile(control).value_or("").find("oom_kill ") != std::string::npos) {
    return Key(control, "oom_kill") > 0;
  }
  return Number(memory_dir_ + "/memory.failcnt").value_or(0) > 0;
}

bool CgroupLeaf::PidsLimitHit() const {
  if (pids_dir_.empty()) return false;
  return Key(pids_dir_ + "/pids.events", "max") > 0;
}

absl::Status CgroupLeaf::Remove() {
  for (int fd : procs_fds_) close(fd);
  procs_fds_.clear();
  if (v2_dir_fd_ >= 0) close(v2_dir_fd_);
  v2_dir_fd_ = -1;
  absl::Status status;
  for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
    if (is_v2()) (void)WriteCgroupFile(*it + "/cgroup.kill", "1");
    for (int attempt = 0; attempt < 200; ++attempt) {
      for (absl::string_view line : absl::StrSplit(ReadCgroupFile(*it + "/cgroup.procs").value_or(""), '\n')) {
        int pid = 0;
        // Only real pids: kill() with 0 or -1 would hit a whole group.
        if (absl::SimpleAtoi(line, &pid) && pid > 0) kill(pid, SIGKILL);
      }
      if (rmdir(it->c_str()) == 0 || errno == ENOENT) break;
      if (errno != EBUSY) {
        status.Update(absl::ErrnoToStatus(errno, "rmdir " + *it));
        break;
      }
      usleep(1000);  // The killed tasks are still exiting.
    }
  }
  dirs_.clear();
  return status;
}

CgroupLeaf::~CgroupLeaf() { (void)Remove(); }

}  // namespace sandbox
}  // namespace forkserver
