#include "forkserver/sandbox/seccomp_log.h"

#include <fcntl.h>
#include <seccomp.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace forkserver {
namespace sandbox {
namespace {

// The value of " key=" in an audit record, up to the next space.
absl::string_view Field(absl::string_view record, absl::string_view key) {
  const std::string needle = absl::StrCat(" ", key, "=");
  const size_t at = record.find(needle);
  if (at == absl::string_view::npos) return {};
  absl::string_view rest = record.substr(at + needle.size());
  return rest.substr(0, rest.find(' '));
}

std::string NameOf(absl::string_view arch_hex, int nr) {
  uint32_t arch = 0;
  const bool native = absl::SimpleHexAtoi(arch_hex, &arch) && arch == seccomp_arch_native();
  if (native) {
    if (char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr)) {
      std::string result = name;
      std::free(name);  // libseccomp's contract: the caller frees it.
      return result;
    }
  }
  return absl::StrCat("syscall ", nr, " (arch ", arch_hex, ")");
}

}  // namespace

uint64_t MonotonicMicros() {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<uint64_t>(now.tv_sec) * 1000000 + static_cast<uint64_t>(now.tv_nsec) / 1000;
}

absl::StatusOr<std::string> FindSeccompKill(pid_t host_pid, uint64_t not_before_us) {
  const int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "reading the kernel log (/dev/kmsg)");
  const std::string pid_field = absl::StrCat(host_pid);
  std::string found;
  char buffer[8192];
  while (true) {
    // One record per read: "prio,seq,usec,flags;message".
    const ssize_t n = read(fd, buffer, sizeof(buffer) - 1);
    if (n < 0 && errno == EPIPE) continue;  // Overwritten records: skip on.
    if (n <= 0) break;
    absl::string_view record(buffer, static_cast<size_t>(n));
    if (record.find("type=1326") == absl::string_view::npos) continue;
    std::vector<absl::string_view> header = absl::StrSplit(record.substr(0, record.find(';')), ',');
    uint64_t usec = 0;
    if (header.size() < 3 || !absl::SimpleAtoi(header[2], &usec)) continue;
    // 10 ms of slack: the log clock and CLOCK_MONOTONIC differ slightly.
    if (usec + 10000 < not_before_us || Field(record, "pid") != pid_field) continue;
    int nr = -1;
    if (!absl::SimpleAtoi(Field(record, "syscall"), &nr)) continue;
    found = NameOf(Field(record, "arch"), nr);
  }
  close(fd);
  if (found.empty()) return absl::NotFoundError("no seccomp record for the process");
  return found;
}

}  // namespace sandbox
}  // namespace forkserver
