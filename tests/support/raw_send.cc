#include "tests/support/raw_send.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace forkserver {
namespace testing {

long SendWithMemfds(int socket, const std::string& bytes, int fd_count,
                    int flags, int last_fd) {
  std::vector<int> fds;
  for (int i = 0; i < fd_count; ++i) {
    fds.push_back(::memfd_create("raw-send", MFD_CLOEXEC));
  }
  if (last_fd >= 0) fds.push_back(last_fd);
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  const long sent = ::sendmsg(socket, &msg, MSG_NOSIGNAL | flags);
  const int send_errno = errno;
  for (int i = 0; i < fd_count; ++i) ::close(fds[i]);
  errno = send_errno;
  return sent;
}

}  // namespace testing
}  // namespace forkserver
