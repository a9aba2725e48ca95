// File: forkserver/child/fd_closer.h
// -----------------------------------------------------------------------------
// The loop of the fork server's descriptor closer: a process of its own
// that receives descriptors (SCM_RIGHTS) on a socket and closes them.
//
// Why a process: the server's only thread must never block, and close()
// can. A TCP socket with SO_LINGER and unsent data waits out its linger
// time in close(); a file on a FUSE mount waits for its daemon's flush; a
// Unix socket carrying such descriptors in its queue does both when it is
// closed. Every descriptor a client sends therefore goes to the closer
// (forkserver/client_fd_closer.h): the server's own close() of its copy is
// then never the last reference. A closer stuck in close() costs nothing
// but itself; the server replaces it when its queue fills.
//
// The server forks it through ForkChild (entry mode: signals reset, its
// socket installed at a fixed number, every other descriptor closed,
// SIGKILL on the server's death) and calls RunFdCloserAsyncSafe in the
// child. Async-signal-safe, as child_setup.cc: raw syscalls only.

#ifndef FORKSERVER_FORKSERVER_CHILD_FD_CLOSER_H_
#define FORKSERVER_FORKSERVER_CHILD_FD_CLOSER_H_

namespace forkserver {

// Receives descriptors on `socket` and closes them, until EOF or an error
// on `socket`; then _exit(0). Never returns.
//
// The protocol: one-byte messages on a stream socket. kFdCloserHold with
// descriptors (SCM_RIGHTS): hold them. kFdCloserCloseNow (also with
// descriptors, or without): close everything held. The server sends its
// descriptors with kFdCloserHold, closes its own copies, then sends
// kFdCloserCloseNow, so the closer's close is always the last reference:
// were the closer to close first, the server's close would be the last
// one, and block.
[[noreturn]] void RunFdCloserAsyncSafe(int socket);

inline constexpr char kFdCloserHold = 'H';
inline constexpr char kFdCloserCloseNow = 'C';

// The most descriptors one message to the closer carries (the kernel's
// SCM_MAX_FD).
inline constexpr int kFdCloserBatch = 253;
// The most the closer holds before a kFdCloserCloseNow. The server
// releases one client packet's descriptors at a time (at most
// kMaxPacketFds, 64, lib/ipc/seqpacket.h) and then says close, so this is
// never reached; if it were, the closer would close early, and the
// server's close of its copy could again be the last.
inline constexpr int kFdCloserHeldMax = 4096;

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_CHILD_FD_CLOSER_H_
