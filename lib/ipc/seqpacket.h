// File: lib/ipc/seqpacket.h
// -----------------------------------------------------------------------------
// One packet at a time over an AF_UNIX SOCK_SEQPACKET socket, with
// descriptors (SCM_RIGHTS). Both the fork server and its clients speak
// through these two functions, so the caps below hold on both sides.
//
// A packet is bounded: at most kMaxPacketBytes of payload and kMaxPacketFds
// descriptors. A packet over a cap (bigger: MSG_TRUNC; more descriptors;
// more than the receiver's fd table allowed: MSG_CTRUNC) is an error; the
// descriptors that did arrive with it are left in the packet, so the
// caller decides how they are closed (the fork server hands them to its
// closer process). The receive buffer takes all a sender can attach
// (kKernelMaxFdsPerMessage), so the kernel never closes any inside
// recvmsg but for a full descriptor table. Received descriptors are
// O_CLOEXEC (MSG_CMSG_CLOEXEC).

#ifndef FORKSERVER_LIB_IPC_SEQPACKET_H_
#define FORKSERVER_LIB_IPC_SEQPACKET_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "lib/base/unique_fd.h"
#include "lib/base/wait_readable.h"

namespace forkserver {

inline constexpr size_t kMaxPacketBytes = 64 * 1024;
inline constexpr int kMaxPacketFds = 64;
// The most descriptors one sendmsg can carry (the kernel's SCM_MAX_FD).
inline constexpr int kKernelMaxFdsPerMessage = 253;
// Highest descriptor number (exclusive) a child may be given, checked by
// the sender and the server alike.
inline constexpr int kMaxChildFdNumber = 1 << 16;

struct Packet {
  std::string bytes;
  std::vector<UniqueFd> fds;
};

// Sends one packet. Never raises SIGPIPE (MSG_NOSIGNAL). Errors:
// INVALID_ARGUMENT when over a cap; UNAVAILABLE when the peer is gone
// (EPIPE, ECONNRESET); RESOURCE_EXHAUSTED on EAGAIN/ENOBUFS/ENOMEM;
// otherwise the errno status.
absl::Status SendPacket(int socket, absl::string_view bytes,
                        absl::Span<const int> fds = {});

// Receives one packet, waiting until `deadline` (absl::InfinitePast() means
// "only if one is already there"). Errors: UNAVAILABLE when the peer closed
// the connection (EOF or ECONNRESET); DEADLINE_EXCEEDED when nothing came
// in time; INVALID_ARGUMENT for a packet over a cap or control data that
// is not SCM_RIGHTS (its descriptors, if any, still in packet->fds);
// otherwise the errno status.
absl::Status ReceivePacket(int socket, absl::Time deadline, Packet* packet);

// ReceivePacket for a receiver that must never block on closing what it
// was sent (the single-threaded fork server, whose clients are not
// trusted): before anything can close them, received sockets with
// SO_LINGER on have it turned off, since the close of a lingering TCP
// socket's last reference waits up to l_linger seconds. That changes the
// socket for every holder (the sender, and a child given it): its final
// close no longer waits. Other descriptors whose close can block (a file
// on a FUSE mount whose daemon never answers the flush) are not caught.
absl::Status ReceiveUntrustedPacket(int socket, absl::Time deadline, Packet* packet);

// True when `status` means "the peer closed the connection" as reported by
// ReceivePacket / SendPacket.
bool IsPeerClosed(const absl::Status& status);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_IPC_SEQPACKET_H_
