#include "forkserver/client_fd_closer.h"

#include <signal.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "forkserver/child/fd_closer.h"
#include "forkserver/child/spawner.h"
#include "forkserver/server_log.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace server_internal {
namespace {

// The closer's end of the socket, at a fixed number in the closer.
constexpr int kCloserSocketFd = 3;

// Whether closing `fd` can block: false only for kinds whose release the
// kernel does at once. A pipe or FIFO; an anonymous inode (eventfd,
// signalfd, timerfd, pidfd, epoll); /dev/null and the other memory
// devices; a regular file on a local file system
// (memfd, tmpfs, ext4, xfs, btrfs), whose close flushes nothing remote.
// Everything else goes to the closer: sockets (SO_LINGER, or a Unix
// socket's queue of further descriptors), ttys (close drains output),
// devices, directories and files on FUSE, NFS, overlay and the rest.
// Closing the safe kinds in place also keeps a stuck closer from delaying
// the EOF a child's reader waits for on a pipe.
bool CloseCannotBlock(int fd) {
  struct stat info;
  if (::fstat(fd, &info) != 0) return false;
  const mode_t type = info.st_mode & S_IFMT;
  if (type == S_IFIFO || type == 0) return true;
  // The memory devices (/dev/null, zero, full, random, urandom: major 1);
  // not ttys, whose close may wait for output to drain.
  if (type == S_IFCHR) return major(info.st_rdev) == 1;
  if (type != S_IFREG) return false;
  struct statfs fs;
  if (::fstatfs(fd, &fs) != 0) return false;
  switch (static_cast<uint64_t>(fs.f_type)) {
    case TMPFS_MAGIC:
    case HUGETLBFS_MAGIC:
    case EXT4_SUPER_MAGIC:  // Also ext2 and ext3.
    case XFS_SUPER_MAGIC:
    case BTRFS_SUPER_MAGIC:
      return true;
    default:
      return false;
  }
}

}  // namespace

ClientFdCloser::~ClientFdCloser() { Stop(); }

void ClientFdCloser::Stop() {
  socket_.reset();
  if (pidfd_) {
    // Killed, not left to finish: an exiting process's closes do not
    // linger (inet_release skips SO_LINGER under PF_EXITING).
    ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    pidfd_.reset();
  }
  pid_ = 0;
}

absl::Status ClientFdCloser::Start() {
  Stop();
  // A stream, not SEQPACKET: a datagram queue holds only
  // net.unix.max_dgram_qlen (10) messages, and a closer merely waiting for
  // the CPU would look stuck. A stream's holds a send buffer's worth
  // (hundreds of one-byte messages, each with its descriptors).
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return ErrnoError("socketpair for the descriptor closer");
  }
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  ChildSetupPlan plan;
  plan.parent_death_signal = SIGKILL;
  plan.expected_parent = ::getpid();
  std::strncpy(plan.name, "fs-fd-closer", sizeof(plan.name) - 1);
  plan.fd_count = 1;
  plan.source_fds[0] = theirs.get();
  plan.target_fds[0] = kCloserSocketFd;
  // An ordinary SIGCHLD child: when it dies the server's reaper reaps it
  // with the strangers (forkserver/reaper.h), so no wait of ours can block.
  ASSIGN_OR_RETURN(ForkedChild child, ForkChild(plan));
  if (child.pid == 0) RunFdCloserAsyncSafe(kCloserSocketFd);  // ===== CHILD.
  theirs.reset();
  pid_ = child.pid;
  pidfd_ = std::move(child.pidfd);
  RETURN_IF_ERROR(AwaitChildSetup(child.report.get(),
                                  absl::Now() + absl::Seconds(10)));
  socket_ = std::move(ours);
  started_ = true;
  return absl::OkStatus();
}

bool ClientFdCloser::Send(char what, const int* fds, int count) {
  if (!socket_) return false;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kFdCloserBatch)] = {};
  iovec iov{&what, sizeof(what)};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  if (count > 0) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * count);
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    header->cmsg_level = SOL_SOCKET;
    header->cmsg_type = SCM_RIGHTS;
    header->cmsg_len = CMSG_LEN(sizeof(int) * count);
    std::memcpy(CMSG_DATA(header), fds, sizeof(int) * count);
  }
  ssize_t sent;
  do {
    sent = ::sendmsg(socket_.get(), &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  } while (sent < 0 && errno == EINTR);
  return sent == 1;
}

void ClientFdCloser::Release(std::vector<UniqueFd>& fds) {
  std::vector<int> numbers;
  numbers.reserve(fds.size());
  for (UniqueFd& fd : fds) {
    if (!fd) continue;
    if (CloseCannotBlock(fd.get())) {
      fd.reset();
    } else {
      numbers.push_back(fd.get());
    }
  }
  if (numbers.empty()) {
    fds.clear();
    return;
  }
  // Hands every batch over; on a failure (the closer's queue is full, it
  // is stuck in a close, it died, or there is none) a new closer gets
  // them all again: we still hold our copies, and the old closer's die
  // with it (an exiting process's closes do not linger). Once at most.
  auto hand_over = [&] {
    for (size_t at = 0; at < numbers.size(); at += kFdCloserBatch) {
      const int count =
          static_cast<int>(std::min<size_t>(kFdCloserBatch, numbers.size() - at));
      if (!Send(kFdCloserHold, numbers.data() + at, count)) return false;
    }
    return true;
  };
  if (!hand_over()) {
    // Never started (a template's starts on first use): not a replacement.
    const bool replacing = started_;
    const int error = errno;
    if (replacing) ++restarts_;
    absl::Status restarted = Start();
    if (restarted.ok() && hand_over()) {
      if (replacing) {
        Log(absl::StrCat("descriptor closer replaced (send: ", std::strerror(error), ")"));
      }
    } else {
      Log(absl::StrCat("descriptor closer unavailable (",
                       restarted.ok() ? std::strerror(errno) : restarted.ToString(),
                       "); closing ", numbers.size(),
                       " client descriptors in the server itself"));
    }
  }
  // Our copies first: then the closer's are the last references.
  fds.clear();
  if (socket_ && !Send(kFdCloserCloseNow, nullptr, 0)) {
    // It holds them and cannot be told: a new one for next time; the old
    // one's held descriptors close as it is killed (without lingering).
    ++restarts_;
    if (absl::Status restarted = Start(); !restarted.ok()) {
      Log(absl::StrCat("descriptor closer unavailable: ", restarted.ToString()));
    }
  }
}

}  // namespace server_internal
}  // namespace forkserver
