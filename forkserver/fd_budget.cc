#include "forkserver/fd_budget.h"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/server_log.h"

namespace forkserver {
namespace server_internal {
int CountOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;  // EMFILE: no room for even this one.
  int count = 0;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // The directory stream's own descriptor.
}

int64_t FdLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return 1024;
  return static_cast<int64_t>(
      std::min<rlim_t>(limit.rlim_cur, rlim_t{1} << 30));
}

namespace {
// Written once by RaiseFdLimit before the server forks anything; the
// server is single-threaded and its templates inherit the value.
int64_t soft_limit_for_children = -1;
}  // namespace

int64_t RaiseFdLimit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 &&
      limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) != 0) {
      Log(absl::StrCat("could not raise RLIMIT_NOFILE from ", limit.rlim_cur,
                       " to ", limit.rlim_max, ": ", std::strerror(errno)));
    } else {
      soft_limit_for_children = static_cast<int64_t>(limit.rlim_cur);
    }
  }
  return FdLimit();
}

int64_t FdLimitForChildren() { return soft_limit_for_children; }

int ConnectionsThatFit(int64_t fd_limit, int warm_workers) {
  const int64_t budget = fd_limit - kFixedFds - kRequestFds -
                         int64_t{kFdsPerWarmChild} * warm_workers;
  return static_cast<int>(
      std::clamp<int64_t>(budget / kFdsPerConnection, 1, 1 << 24));
}

bool FdTableNearlyFull() {
  const int open = CountOpenFds();
  return open < 0 || open + kRequestFds > FdLimit();
}

}  // namespace server_internal
}  // namespace forkserver
