#include "lib/ipc/seqpacket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace {

// The peer-closed status carries this message so IsPeerClosed() can tell it
// from other UNAVAILABLE errors without string parsing of errno texts.
constexpr absl::string_view kPeerClosed = "connection closed by peer";

// Moves every SCM_RIGHTS descriptor of `msg` into `fds` (owned from here
// on); true when other control data came too.
// SOCK_SEQPACKET: a zero-length read is EOF or an empty packet. Only
// after EOF is the socket hung up; an empty packet from a live peer is
// malformed (no message of ours is empty) and gets a reason.
absl::Status EmptyRead(int socket) {
  pollfd hangup{socket, POLLRDHUP, 0};
  const bool hung_up = ::poll(&hangup, 1, 0) == 1 &&
                       (hangup.revents & (POLLRDHUP | POLLHUP)) != 0;
  if (!hung_up) {
    return absl::InvalidArgumentError(
        "empty packet (no valid message is empty)");
  }
  return absl::UnavailableError(kPeerClosed);
}

bool TakeDescriptors(msghdr& msg, std::vector<UniqueFd>* fds) {
  bool foreign_control = false;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr;
       cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_RIGHTS) {
      const size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
        fds->emplace_back(fd);
      }
    } else {
      foreign_control = true;
    }
  }
  return foreign_control;
}

}  // namespace

bool IsPeerClosed(const absl::Status& status) {
  return absl::IsUnavailable(status) && status.message() == kPeerClosed;
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

namespace {

// Closing the last reference to a TCP socket with SO_LINGER on waits (up
// to l_linger seconds) for its unsent data; with linger off, close()
// returns at once and the kernel sends the rest in the background.
void ClearLinger(const std::vector<UniqueFd>& fds) {
  for (const UniqueFd& fd : fds) {
    struct stat info;
    if (::fstat(fd.get(), &info) != 0 || !S_ISSOCK(info.st_mode)) continue;
    linger value{};
    socklen_t size = sizeof(value);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &value, &size) != 0 ||
        value.l_onoff == 0) {
      continue;
    }
    const linger off{};
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &off, sizeof(off));
  }
}

absl::Status Receive(int socket, absl::Time deadline, bool untrusted, Packet* packet) {
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
  // Room for all a sender can attach (SCM_MAX_FD), not just our cap:
  // descriptors past the buffer the kernel closes itself, in this thread,
  // inside recvmsg, where nobody can hand them to a closer process
  // (forkserver/client_fd_closer.h) and a blocking close would block us.
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kKernelMaxFdsPerMessage)];
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

  // Take ownership of every descriptor before looking at anything else.
  // On the error paths below they stay in packet->fds, for the caller to
  // close or hand to a closer.
  const bool foreign_control = TakeDescriptors(msg, &packet->fds);
  if (untrusted) ClearLinger(packet->fds);
  if (msg.msg_flags & MSG_CTRUNC) {
    packet->bytes.clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "descriptors were truncated (the receiver's descriptor table is full)"));
  }
  if (packet->fds.size() > static_cast<size_t>(kMaxPacketFds)) {
    packet->bytes.clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "packet carried ", packet->fds.size(), " descriptors; at most ", kMaxPacketFds,
        " are accepted"));
  }
  if (msg.msg_flags & MSG_TRUNC ||
      static_cast<size_t>(received) > kMaxPacketBytes) {
    packet->bytes.clear();
    return absl::InvalidArgumentError(absl::StrCat(
        "packet exceeds the cap of ", kMaxPacketBytes, " bytes"));
  }
  if (foreign_control) {
    packet->bytes.clear();
    return absl::InvalidArgumentError(
        "packet carried control data other than SCM_RIGHTS");
  }
  if (received == 0 && packet->fds.empty()) {
    packet->bytes.clear();
    return EmptyRead(socket);
  }
  packet->bytes.resize(received);
  return absl::OkStatus();
}

}  // namespace

absl::Status ReceivePacket(int socket, absl::Time deadline, Packet* packet) {
  return Receive(socket, deadline, /*untrusted=*/false, packet);
}

absl::Status ReceiveUntrustedPacket(int socket, absl::Time deadline, Packet* packet) {
  return Receive(socket, deadline, /*untrusted=*/true, packet);
}

}  // namespace forkserver
