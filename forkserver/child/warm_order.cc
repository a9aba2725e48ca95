// Parent side of a warm worker (warm_child.h): sending it its order. Runs
// in the server only; never in a child.

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "forkserver/child/warm_child.h"
#include "lib/base/status_macros.h"

namespace forkserver {

using warm_internal::kWarmOrderMagic;
using warm_internal::WarmOrderHeader;

absl::Status SendWarmOrder(int channel, const WarmOrder& order,
                           absl::Span<const int> fds) {
  const size_t size = sizeof(WarmOrderHeader) + order.entry.size() +
                      order.arg.size();
  if (size > kMaxWarmOrderBytes || fds.size() != order.target_fds.size() ||
      fds.size() > static_cast<size_t>(kMaxChildFds)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a warm order of ", size, " bytes and ", fds.size(),
        " descriptors does not fit (at most ", kMaxWarmOrderBytes, ", ",
        kMaxChildFds, ")"));
  }
  WarmOrderHeader header{};
  header.magic = kWarmOrderMagic;
  header.entry_size = static_cast<uint32_t>(order.entry.size());
  header.arg_size = static_cast<uint32_t>(order.arg.size());
  header.fd_count = static_cast<int32_t>(fds.size());
  const absl::string_view name = order.name.empty() ? order.entry : order.name;
  std::memcpy(header.name, name.data(),
              std::min(name.size(), sizeof(header.name) - 1));
  for (size_t i = 0; i < fds.size(); ++i) {
    header.target_fds[i] = order.target_fds[i];
  }
  iovec iov[3] = {
      {&header, sizeof(header)},
      {const_cast<char*>(order.entry.data()), order.entry.size()},
      {const_cast<char*>(order.arg.data()), order.arg.size()},
  };
  msghdr message{};
  message.msg_iov = iov;
  message.msg_iovlen = 3;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxChildFds)];
  if (!fds.empty()) {
    message.msg_control = control;
    message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&message);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t sent;
  do {
    sent = ::sendmsg(channel, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent == static_cast<ssize_t>(size)) return absl::OkStatus();
  if (sent >= 0) {  // SOCK_SEQPACKET is all or nothing; be sure anyway.
    return absl::InternalError(absl::StrCat(
        "warm order: sent ", sent, " of ", size, " bytes"));
  }
  const int error = errno;
  if (error == EPIPE || error == ECONNRESET || error == ECONNREFUSED ||
      error == ENOTCONN) {
    return absl::UnavailableError(absl::StrCat(
        "the warm child is gone: ", std::strerror(error)));
  }
  if (error == EAGAIN || error == ENOBUFS || error == ENOMEM ||
      error == EMSGSIZE || error == ETOOMANYREFS) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "warm order not sent now: ", std::strerror(error)));
  }
  return ErrnoError("sendmsg of a warm order", error);
}

}  // namespace forkserver
