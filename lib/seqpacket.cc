#include "lib/seqpacket.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/status_macros.h"

namespace forkserver {
namespace {

// The peer-closed status carries this message so IsPeerClosed() can tell it
// from other UNAVAILABLE errors without string parsing of errno texts.
constexpr absl::string_view kPeerClosed = "connection closed by peer";

int RemainingMillis(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return -1;
  absl::Duration left = deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return 0;
  // Round up so a 0.4 ms remainder still waits instead of spinning.
  return static_cast<int>(
      std::min<int64_t>(absl::ToInt64Milliseconds(left) + 1, 1 << 30));
}

}  // namespace

bool IsPeerClosed(const absl::Status& status) {
  return absl::IsUnavailable(status) && status.message() == kPeerClosed;
}

bool WaitReadable(int fd, absl::Time deadline) {
  while (true) {
    pollfd pfd{fd, POLLIN, 0};
    int rc = ::poll(&pfd, 1, RemainingMillis(deadline));
    if (rc > 0) return true;
    if (rc == 0) {
      if (absl::Now() >= deadline) return false;
      continue;  // Woke up early because of millisecond rounding.
    }
    if (errno != EINTR) return true;  // Let the caller's read report it.
  }
}

absl::Status SendPacket(int socket, absl::string_view bytes,
                        absl::Span<const int> fds) {
  if (bytes.size() > kMaxPacketBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("packet of ", bytes.size(), " bytes exceeds the cap of ",
                     kMaxPacketBytes, " bytes"));
  }
  if (fds.size() > static_cast<size_t>(kMaxPacketFds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("packet with ", fds.size(),
                     " descriptors exceeds the cap of ", kMaxPacketFds));
  }
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPacketFds)];
  if (!fds.empty()) {
    const size_t payload = sizeof(int) * fds.size();
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(payload);
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(payload);
    std::memcpy(CMSG_DATA(cmsg), fds.data(), payload);
  }
  while (true) {
    ssize_t sent = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (sent >= 0) return absl::OkStatus();
    switch (errno) {
      case EINTR:
        continue;
      case EPIPE:
      case ECONNRESET:
      case ENOTCONN:
        return absl::UnavailableError(kPeerClosed);
      case EAGAIN:
      case ENOBUFS:
      case ENOMEM:
        return absl::ResourceExhaustedError(
            absl::StrCat("sendmsg: ", std::strerror(errno)));
      default:
        return ErrnoError("sendmsg");
    }
  }
}

absl::Status ReceivePacket(int socket, absl::Time deadline, Packet* packet) {
  packet->bytes.clear();
  packet->fds.clear();
  if (deadline != absl::InfinitePast() && !WaitReadable(socket, deadline)) {
    return absl::DeadlineExceededError("no packet before the deadline");
  }
  // One byte more than the cap, so an over-cap packet is seen as MSG_TRUNC
  // even on kernels that would report the exact length.
  packet->bytes.resize(kMaxPacketBytes + 1);
  iovec iov{packet->bytes.data(), packet->bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPacketFds)];
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t received;
  do {
    received = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (received < 0 && errno == EINTR);
  if (received < 0) {
    packet->bytes.clear();
    if (errno == EAGAIN) {
      return absl::DeadlineExceededError("no packet before the deadline");
    }
    if (errno == ECONNRESET) return absl::UnavailableError(kPeerClosed);
    return ErrnoError("recvmsg");
  }

  // Take ownership of every descriptor before looking at anything else, so
  // each error path below closes them.
  bool foreign_control = false;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr;
       cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
      const size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
        packet->fds.emplace_back(fd);
      }
    } else {
      foreign_control = true;
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    packet->fds.clear();
    packet->bytes.clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "descriptors were truncated (more than ", kMaxPacketFds,
        " sent, or the receiver's descriptor table is full)"));
  }
  if (msg.msg_flags & MSG_TRUNC ||
      static_cast<size_t>(received) > kMaxPacketBytes) {
    packet->fds.clear();
    packet->bytes.clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "packet exceeds the cap of ", kMaxPacketBytes, " bytes"));
  }
  if (foreign_control) {
    packet->fds.clear();
    packet->bytes.clear();
    return absl::InvalidArgumentError(
        "packet carried control data other than SCM_RIGHTS");
  }
  if (received == 0 && packet->fds.empty()) {
    // SOCK_SEQPACKET: a zero-length read with no descriptors is EOF. (An
    // empty packet is indistinguishable from it, and no valid message of
    // ours is empty.)
    packet->bytes.clear();
    return absl::UnavailableError(kPeerClosed);
  }
  packet->bytes.resize(received);
  return absl::OkStatus();
}

}  // namespace forkserver
