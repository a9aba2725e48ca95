// The floor is deliberately bare: every step the real server adds on top
// (the protocol, validation, the children table, pidfds, the exit notice's
// rusage) is what the comparison is meant to expose, so none of it is here.
// The children are forked from a process that may have threads, so they use
// only async-signal-safe calls (raw send/recv/fork/waitpid/_exit).

#include "tests/bench/relay_floor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/time/clock.h"

namespace forkserver {
namespace bench {
namespace {

int64_t MonotonicNanos() {
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

// One byte, and `fd` when it is not -1.
bool SendByte(int socket, char byte, int fd = -1) {
  iovec iov{&byte, 1};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(header), &fd, sizeof(int));
  }
  return ::sendmsg(socket, &message, MSG_NOSIGNAL) == 1;
}

// The byte (or -1 at EOF or error); the descriptor that came with it in
// `*fd` (-1 if none).
int ReceiveByte(int socket, int* fd) {
  char byte;
  iovec iov{&byte, 1};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  *fd = -1;
  if (::recvmsg(socket, &message, MSG_CMSG_CLOEXEC) != 1) return -1;
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  if (header != nullptr && header->cmsg_type == SCM_RIGHTS) {
    std::memcpy(fd, CMSG_DATA(header), sizeof(int));
  }
  return static_cast<unsigned char>(byte);
}

void Reap(pid_t pid) {
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

}  // namespace

std::vector<absl::Duration> RelayRequestToRunning(absl::Duration budget) {
  std::vector<absl::Duration> sample;
  int to_relay[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, to_relay) != 0) {
    return sample;
  }
  const pid_t relay = ::fork();
  if (relay == 0) {
    ::close(to_relay[0]);
    for (;;) {
      // A fresh worker per request, forked ahead, blocked on its channel:
      // its first steps pay the copy-on-write faults a warm worker pays.
      int channel[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) != 0) {
        ::_exit(1);
      }
      const pid_t worker = ::fork();
      if (worker == 0) {
        ::close(to_relay[1]);
        ::close(channel[0]);
        int fd;
        if (ReceiveByte(channel[1], &fd) >= 0 && fd >= 0) {
          const int64_t now = MonotonicNanos();
          (void)!::write(fd, &now, sizeof(now));
        }
        ::_exit(0);
      }
      ::close(channel[1]);
      int fd, byte;
      while ((byte = ReceiveByte(to_relay[1], &fd)) == 'p') {
        if (!SendByte(to_relay[1], 'p')) break;
      }
      if (byte >= 0) (void)SendByte(channel[0], 'g', fd);
      if (fd >= 0) ::close(fd);
      ::close(channel[0]);  // At EOF the worker reads 0 and exits too.
      Reap(worker);
      if (byte < 0) ::_exit(0);
    }
  }
  ::close(to_relay[1]);
  const absl::Time end = absl::Now() + budget;
  while (relay > 0 && absl::Now() < end && sample.size() < 2000) {
    // The round trip returns once the next worker is forked and the relay
    // waits: as a warm sample follows the status request that found the
    // pool full.
    int pipe_fds[2], ignored;
    if (!SendByte(to_relay[0], 'p') || ReceiveByte(to_relay[0], &ignored) != 'p') {
      break;
    }
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) break;
    const int64_t start = MonotonicNanos();
    const bool sent = SendByte(to_relay[0], 'g', pipe_fds[1]);
    ::close(pipe_fds[1]);
    int64_t running = 0;
    const bool got = sent && ::read(pipe_fds[0], &running, sizeof(running)) ==
                                 sizeof(running);
    ::close(pipe_fds[0]);
    if (!got) break;
    sample.push_back(absl::Nanoseconds(running - start));
  }
  ::close(to_relay[0]);  // EOF: the relay and its worker exit.
  if (relay > 0) Reap(relay);
  return sample;
}

std::vector<absl::Duration> RelayStartJoin(absl::Duration budget) {
  std::vector<absl::Duration> sample;
  int to_relay[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, to_relay) != 0) {
    return sample;
  }
  const pid_t relay = ::fork();
  if (relay == 0) {
    ::close(to_relay[0]);
    for (bool first = true;; first = false) {
      // The next child, forked ahead and blocked until it is asked for.
      int go[2];
      if (::pipe2(go, O_CLOEXEC) != 0) ::_exit(1);
      const pid_t child = ::fork();
      if (child == 0) {
        char byte;
        ::close(go[1]);
        (void)!::read(go[0], &byte, 1);
        ::_exit(0);
      }
      ::close(go[0]);
      // Ready: the client times its next request from here.
      if (!first && !SendByte(to_relay[1], 'r')) ::_exit(0);
      int fd;
      const int request = ReceiveByte(to_relay[1], &fd);
      if (request >= 0) (void)!::write(go[1], "g", 1);
      ::close(go[1]);  // At EOF the child reads 0 and exits too.
      int status = 0;
      while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
      }
      if (request < 0 || !SendByte(to_relay[1], static_cast<char>(status)))
        ::_exit(0);
    }
  }
  ::close(to_relay[1]);
  const absl::Time end = absl::Now() + budget;
  while (relay > 0 && absl::Now() < end) {
    const int64_t start = MonotonicNanos();
    int ignored;
    if (!SendByte(to_relay[0], 'g') || ReceiveByte(to_relay[0], &ignored) < 0) {
      break;
    }
    sample.push_back(absl::Nanoseconds(MonotonicNanos() - start));
    if (ReceiveByte(to_relay[0], &ignored) != 'r') break;  // Next one forked.
  }
  ::close(to_relay[0]);
  if (relay > 0) Reap(relay);
  return sample;
}

}  // namespace bench
}  // namespace forkserver
