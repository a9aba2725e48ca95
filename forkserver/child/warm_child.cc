// A warm worker's fork and its wait for a request (warm_child.h).
//
// DANGER, as in child_setup.cc: from the fork to the end of
// AwaitOrderAsyncSafe the child runs async-signal-safe code only: raw
// syscalls, no malloc (the receive buffer is static), no locks, no stdio,
// no exceptions. (The fork server is single-threaded, so the child could
// in fact allocate; the steps stay to child_setup.cc's rules so that one
// review covers every child.) Review with fork.cc and child_setup.cc.

#include "forkserver/child/warm_child.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "forkserver/child/spawner.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace {

using warm_internal::kWarmOrderMagic;
using warm_internal::WarmOrderHeader;

// Never touched by the server itself (it is .bss: no page is made until a
// child writes one), and in a child only as far as its order reaches.
alignas(64) char g_order[kMaxWarmOrderBytes];

[[noreturn]] void FailAwait(int channel, int error) {
  const ChildSetupFailure failure{
      static_cast<int32_t>(ChildStep::kAwaitRequest), error};
  while (::write(channel, &failure, sizeof(failure)) < 0 && errno == EINTR) {
  }
  ::_exit(kChildSetupFailedExitCode);
}

void CloseReceived(const int* fds, int count) {
  for (int i = 0; i < count; ++i) ::close(fds[i]);
}

// ===== CHILD. Blocks until the order comes, checks it, then runs the
// second half of the steps (set_name, install_fds, close_fds,
// restore_fd_limit; the channel is closed last, which is the parent's
// EOF). EOF while waiting: retired.
WarmRequest AwaitOrderAsyncSafe(int channel, int64_t restore_nofile_soft) {
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxChildFds)];
  iovec iov{g_order, sizeof(g_order)};
  msghdr message{};
  message.msg_iov = &iov;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = ::recvmsg(channel, &message, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n == 0) ::_exit(0);  // The server closed the channel: retired.
  if (n < 0) FailAwait(channel, errno);

  int received[kMaxChildFds];
  int received_count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr;
       c = CMSG_NXTHDR(&message, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const int count =
        static_cast<int>((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count && received_count < kMaxChildFds; ++i) {
      __builtin_memcpy(&received[received_count++],
                       CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  WarmOrderHeader header;
  const size_t size = static_cast<size_t>(n);
  bool valid = (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0 &&
               size >= sizeof(header);
  if (valid) {
    __builtin_memcpy(&header, g_order, sizeof(header));
    valid = header.magic == kWarmOrderMagic &&
            header.fd_count == received_count &&
            size == sizeof(header) + header.entry_size + header.arg_size;
  }
  if (!valid) {
    CloseReceived(received, received_count);
    FailAwait(channel, EPROTO);
  }

  ChildSetupPlan plan;
  plan.report_fd = channel;
  plan.reset_signals = false;  // Done at fork time, as new_session and
  plan.new_session = false;    // parent_death were.
  __builtin_memcpy(plan.name, header.name, sizeof(plan.name));
  plan.name[sizeof(plan.name) - 1] = '\0';
  // After install_fds, as for a cold child: lowered while idle, a target
  // at or above the soft limit could not be installed.
  plan.restore_nofile_soft = restore_nofile_soft;
  plan.fd_count = received_count;
  for (int i = 0; i < received_count; ++i) {
    plan.source_fds[i] = received[i];
    plan.target_fds[i] = header.target_fds[i];
  }
  RunChildSetupAsyncSafe(plan);  // Closes the channel when done.

  const char* entry = g_order + sizeof(header);
  return WarmRequest{absl::string_view(entry, header.entry_size),
                     absl::string_view(entry + header.entry_size,
                                       header.arg_size)};
}

}  // namespace

absl::StatusOr<WarmChild> ForkWarmChild(ChildSetupPlan idle_plan) {
  idle_plan.fd_count = 0;
  idle_plan.exec_path = nullptr;
  idle_plan.keep_report_fd = true;
  const int64_t restore_nofile_soft = idle_plan.restore_nofile_soft;
  idle_plan.restore_nofile_soft = -1;  // Done with the request's fds.
  ForkOptions options;
  options.report_socket = true;
  ASSIGN_OR_RETURN(ForkedChild forked, ForkChild(idle_plan, options));
  WarmChild warm;
  if (forked.pid == 0) {
    // ===== CHILD: async-signal-safe until AwaitOrderAsyncSafe returns.
    warm.request = AwaitOrderAsyncSafe(forked.report.release(), restore_nofile_soft);
    return warm;
  }
  warm.pid = forked.pid;
  warm.pidfd = std::move(forked.pidfd);
  warm.channel = std::move(forked.report);
  // Only the server's end (its own open file): a send to a child that is
  // not reading must never block the server.
  if (::fcntl(warm.channel.get(), F_SETFL, O_NONBLOCK) != 0) {
    return ErrnoError("fcntl(O_NONBLOCK) on a warm child's channel");
  }
  return warm;
}

}  // namespace forkserver
