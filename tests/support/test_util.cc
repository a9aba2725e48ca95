#include "tests/support/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "lib/ipc/seqpacket.h"

namespace forkserver {
namespace testing {

absl::StatusOr<std::string> MakeTestDirectory() {
  char pattern[] = "/tmp/fstest-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {  // mkdtemp makes it 0700.
    return absl::ErrnoToStatus(errno, "mkdtemp(/tmp/fstest-XXXXXX)");
  }
  return std::string(pattern);
}

std::pair<UniqueFd, UniqueFd> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) std::abort();
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::string ReadUntilEof(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string text;
  char buffer[4096];
  while (WaitReadable(fd, deadline)) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

bool WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

std::vector<StartMethod> TestedStartMethods() { return AllowedStartMethods(); }

std::string MethodTestName(const ::testing::TestParamInfo<StartMethod>& info) {
  return std::string(StartMethodName(info.param));
}

std::vector<int> FatalSignalsForTests() {
  std::vector<int> signals = {SIGKILL, SIGTERM, SIGABRT, SIGUSR1};
#ifndef __SANITIZE_ADDRESS__
  signals.push_back(SIGSEGV);
#endif
  return signals;
}

std::vector<pid_t> ZombieChildrenOf(pid_t parent) {
  std::vector<pid_t> zombies;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return zombies;
  while (dirent* entry = ::readdir(proc)) {
    pid_t pid;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
    std::string line;
    if (!std::getline(stat, line)) continue;
    // Fields after the parenthesised command: state, ppid, ...
    const size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state;
    pid_t ppid;
    if (rest >> state >> ppid && ppid == parent && state == 'Z') {
      zombies.push_back(pid);
    }
  }
  ::closedir(proc);
  return zombies;
}

int ThreadCount() {
  int count = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count;
}

std::string SoftFdLimitOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/limits"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Max open files", 0) != 0) continue;
    std::istringstream fields(line.substr(14));
    std::string soft;
    fields >> soft;
    return soft;
  }
  return "";
}

std::vector<int> OpenFds(pid_t pid) {
  std::vector<int> fds;
  const std::string path = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return fds;
  const int own = ::dirfd(dir);
  while (dirent* entry = ::readdir(dir)) {
    int fd;
    if (!absl::SimpleAtoi(entry->d_name, &fd)) continue;
    if (pid == ::getpid() && fd == own) continue;
    fds.push_back(fd);
  }
  ::closedir(dir);
  std::sort(fds.begin(), fds.end());
  return fds;
}

bool Exited(pid_t pid) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return true;  // Gone (and reaped) already.
  pollfd pfd{pidfd.get(), POLLIN, 0};
  return ::poll(&pfd, 1, 0) == 1;
}

}  // namespace testing
}  // namespace forkserver
