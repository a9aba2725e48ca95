// The descriptor closer's loop (fd_closer.h).
//
// DANGER, as in child_setup.cc: this runs in a child forked from the
// fork server and stays to async-signal-safe code for its whole life: raw
// syscalls, no malloc, no locks, no stdio. Review with fork.cc and
// child_setup.cc.

#include "forkserver/child/fd_closer.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace forkserver {

// The descriptors of the message being closed, held until the server
// says it has closed its own copies. Static: no allocation here.
int g_held[kFdCloserHeldMax];
int g_held_count = 0;

void CloseHeld() {
  for (int i = 0; i < g_held_count; ++i) ::close(g_held[i]);  // May block: ours to.
  g_held_count = 0;
}

// ===== CHILD.
void RunFdCloserAsyncSafe(int socket) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kFdCloserBatch)];
  char byte;
  while (true) {
    iovec iov{&byte, sizeof(byte)};
    msghdr message{};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    const ssize_t n = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    // The server closed its end, or is gone: what is held closes as this
    // process exits (without lingering).
    if (n <= 0) ::_exit(0);
    // Descriptors past what `control` holds (MSG_CTRUNC) were closed by
    // the kernel in this process already: fine, that is the job.
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr;
         header = CMSG_NXTHDR(&message, header)) {
      if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) {
        continue;
      }
      const int* fds = reinterpret_cast<const int*>(CMSG_DATA(header));
      const size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        if (g_held_count == kFdCloserHeldMax) CloseHeld();  // Never: see the header.
        g_held[g_held_count++] = fds[i];
      }
    }
    if (byte == kFdCloserCloseNow) CloseHeld();
  }
}

}  // namespace forkserver
