#include "forkserver/sandbox/cgroup_manager.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "forkserver/sandbox/cgroup_files.h"
#include "forkserver/sandbox/status_macros.h"

namespace forkserver {
namespace sandbox {
namespace {

struct Hierarchies {
  std::string v2_mount;
  std::string v2_path;
  // controller -> {mount point, our path in it}
  std::vector<std::pair<std::string, std::pair<std::string, std::string>>> v1;
};

// From /proc/self/mountinfo (where each hierarchy is mounted) and
// /proc/self/cgroup (where we are in it).
Hierarchies FindHierarchies() {
  Hierarchies found;
  std::vector<std::pair<std::string, std::string>> v1_mounts;  // options, mount
  for (absl::string_view line : absl::StrSplit(ReadCgroupFile("/proc/self/mountinfo").value_or(""), '\n')) {
    std::vector<std::string> halves = absl::StrSplit(line, " - ");
    if (halves.size() != 2) continue;
    std::vector<std::string> left = absl::StrSplit(halves[0], ' ');
    std::vector<std::string> right = absl::StrSplit(halves[1], ' ');
    if (left.size() < 5 || right.size() < 3) continue;
    if (right[0] == "cgroup2" && found.v2_mount.empty()) found.v2_mount = left[4];
    if (right[0] == "cgroup") v1_mounts.push_back({right[2], left[4]});
  }
  for (absl::string_view line : absl::StrSplit(ReadCgroupFile("/proc/self/cgroup").value_or(""), '\n')) {
    std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() != 3) continue;
    if (parts[1].empty()) {
      found.v2_path = parts[2];
      continue;
    }
    for (absl::string_view controller : absl::StrSplit(parts[1], ',')) {
      for (const auto& [options, mount] : v1_mounts) {
        std::vector<absl::string_view> opts = absl::StrSplit(options, ',');
        if (std::find(opts.begin(), opts.end(), controller) != opts.end()) {
          found.v1.push_back({std::string(controller), {mount, parts[2]}});
        }
      }
    }
  }
  return found;
}

std::vector<std::string> NeededControllers(const Limits& limits) {
  std::vector<std::string> needed;
  if (limits.memory_bytes() > 0) needed.push_back("memory");
  if (limits.pids_max() > 0) needed.push_back("pids");
  if (limits.cpu_millicores() > 0) needed.push_back("cpu");
  return needed;
}

absl::Status Unavailable(const std::string& step, const std::string& why) {
  return absl::FailedPreconditionError(
      absl::StrCat("sandbox step '", step, "' not possible on this host: ", why));
}

}  // namespace

bool CgroupManager::Needed(const Limits& limits) { return !NeededControllers(limits).empty(); }

absl::StatusOr<std::unique_ptr<CgroupManager>> CgroupManager::Create(const Limits& limits) {
  std::unique_ptr<CgroupManager> manager(new CgroupManager());
  SANDBOX_RETURN_IF_ERROR(manager->SetUp(limits));
  return manager;
}

std::vector<std::string> CgroupManager::parents() const {
  std::vector<std::string> all;
  for (const std::string* p : {&v2_parent_, &memory_parent_, &pids_parent_, &cpu_parent_}) {
    if (!p->empty()) all.push_back(*p);
  }
  return all;
}

int CgroupManager::ReclaimStaleParents(const std::string& base) {
  const std::string prefix = absl::StrCat("forkserver-", getuid(), "-");
  DIR* dir = opendir(base.c_str());
  if (dir == nullptr) return 0;
  std::vector<std::string> stale;
  while (dirent* entry = readdir(dir)) {
    absl::string_view name = entry->d_name;
    pid_t pid = 0;
    if (!absl::ConsumePrefix(&name, prefix) || !absl::SimpleAtoi(name, &pid) || pid <= 0 ||
        pid == getpid()) {
      continue;
    }
    // Gone (ESRCH). A pid reused by another process keeps its directory
    // until that one is gone too: never removed while it could be a live
    // server's.
    if (kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(base + "/" + entry->d_name);
  }
  closedir(dir);
  int removed = 0;
  for (const std::string& parent : stale) {
    if (DIR* leaves = opendir(parent.c_str())) {
      std::vector<std::string> names;
      while (dirent* entry = readdir(leaves)) {
        if (absl::StartsWith(entry->d_name, "leaf-")) names.push_back(entry->d_name);
      }
      closedir(leaves);
      for (const std::string& leaf : names) rmdir((parent + "/" + leaf).c_str());
    }
    removed += rmdir(parent.c_str()) == 0 ? 1 : 0;
  }
  return removed;
}

// Our own parent directory: inside our current cgroup if we may write
// there, else at the hierarchy's root. Parents a killed server of ours
// left there go first.
absl::StatusOr<std::string> CgroupManager::OwnParent(const std::string& step,
                                                     const std::string& mount,
                                                     const std::string& own_path) {
  const std::string name = absl::StrCat("forkserver-", getuid(), "-", getpid());
  std::string last_error;
  for (const std::string& base : {mount + (own_path == "/" ? "" : own_path), mount}) {
    ReclaimStaleParents(base);
    const std::string dir = base + "/" + name;
    if (mkdir(dir.c_str(), 0755) == 0) {
      created_.push_back(dir);
      return dir;
    }
    if (errno == EEXIST) return dir;  // Ours already (same uid and pid).
    last_error = absl::StrCat("cannot create ", dir, ": ", std::strerror(errno));
  }
  return Unavailable(step, last_error);
}

absl::Status CgroupManager::SetUp(const Limits& limits) {
  const std::vector<std::string> needed = NeededControllers(limits);
  if (needed.empty()) return absl::OkStatus();
  const Hierarchies found = FindHierarchies();
  if (!found.v2_mount.empty()) {
    const std::string own = found.v2_mount + found.v2_path;
    const std::string offered = ReadCgroupFile(own + "/cgroup.controllers").value_or("");
    std::vector<absl::string_view> controllers = absl::StrSplit(offered, absl::ByAnyChar(" \n"));
    bool all = true;
    for (const std::string& c : needed) {
      all = all && std::find(controllers.begin(), controllers.end(), c) != controllers.end();
    }
    if (all) {
      SANDBOX_ASSIGN_OR_RETURN(v2_parent_, OwnParent("cgroup_v2", found.v2_mount, found.v2_path));
      std::string enable;
      for (const std::string& c : needed) absl::StrAppend(&enable, enable.empty() ? "+" : " +", c);
      if (absl::Status s = WriteCgroupFile(v2_parent_ + "/cgroup.subtree_control", enable); !s.ok()) {
        return Unavailable("cgroup_v2", absl::StrCat("not delegated: ", s.message()));
      }
      return absl::OkStatus();
    }
  }
  for (const std::string& controller : needed) {
    const auto it = std::find_if(found.v1.begin(), found.v1.end(),
                                 [&](const auto& e) { return e.first == controller; });
    const std::string step = "cgroup_" + controller;
    if (it == found.v1.end()) return Unavailable(step, "no v1 or v2 hierarchy offers " + controller);
    SANDBOX_ASSIGN_OR_RETURN(std::string parent, OwnParent(step, it->second.first, it->second.second));
    if (controller == "memory") memory_parent_ = parent;
    if (controller == "pids") pids_parent_ = parent;
    if (controller == "cpu") cpu_parent_ = parent;
  }
  return absl::OkStatus();
}

CgroupManager::~CgroupManager() {
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) rmdir(it->c_str());
}

}  // namespace sandbox
}  // namespace forkserver
