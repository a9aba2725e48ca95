// async-signal-safe: runs after fork. Raw syscalls and stack buffers only:
// no malloc, no stdio, no locks, no exceptions.

#include "forkserver/child/sandbox/namespaces.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace forkserver {
namespace sandbox_child {
namespace {

int Length(const char* s) {
  int n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// "/proc/<pid or self>/<file>" into out (64 bytes is plenty).
void ProcPath(pid_t pid, const char* file, char* out) {
  const char prefix[] = "/proc/";
  int n = 0;
  for (const char* c = prefix; *c; ++c) out[n++] = *c;
  if (pid == 0) {
    for (const char* c = "self"; *c; ++c) out[n++] = *c;
  } else {
    char digits[16];
    int d = 0;
    for (unsigned v = static_cast<unsigned>(pid); v != 0; v /= 10) {
      digits[d++] = static_cast<char>('0' + v % 10);
    }
    while (d > 0) out[n++] = digits[--d];
  }
  out[n++] = '/';
  for (const char* c = file; *c; ++c) out[n++] = *c;
  out[n] = '\0';
}

// One write of the whole text: the kernel requires each map in one write.
int WriteFile(pid_t pid, const char* file, const char* text) {
  char path[64];
  ProcPath(pid, file, path);
  const int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int length = Length(text);
  const ssize_t written = ::write(fd, text, static_cast<size_t>(length));
  const int error = written < 0 ? errno : (written != length ? EIO : 0);
  ::close(fd);
  return error;
}

}  // namespace

int WriteIdMapsAsyncSafe(pid_t pid, const char* uid_map, const char* gid_map,
                         bool deny_setgroups) {
  if (deny_setgroups) {
    if (int error = WriteFile(pid, "setgroups", "deny"); error != 0) return error;
  }
  if (uid_map != nullptr) {
    if (int error = WriteFile(pid, "uid_map", uid_map); error != 0) return error;
  }
  if (gid_map != nullptr) {
    if (int error = WriteFile(pid, "gid_map", gid_map); error != 0) return error;
  }
  return 0;
}

int WaitForReleaseAsyncSafe(int fd) {
  char byte;
  ssize_t n;
  while ((n = ::read(fd, &byte, 1)) < 0 && errno == EINTR) {
  }
  const int error = n < 0 ? errno : (n == 0 ? EPIPE : 0);
  ::close(fd);
  return error;
}

int SetHostnameAsyncSafe(const char* name, int length) {
  return ::sethostname(name, static_cast<size_t>(length)) == 0 ? 0 : errno;
}

int BringUpLoopbackAsyncSafe() {
  const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return errno;
  struct ifreq request = {};
  request.ifr_name[0] = 'l';
  request.ifr_name[1] = 'o';
  int error = 0;
  if (::ioctl(sock, SIOCGIFFLAGS, &request) != 0) {
    error = errno;
  } else {
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(sock, SIOCSIFFLAGS, &request) != 0) error = errno;
  }
  ::close(sock);
  return error;
}

}  // namespace sandbox_child
}  // namespace forkserver
