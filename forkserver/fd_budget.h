// File: forkserver/fd_budget.h
// -----------------------------------------------------------------------------
// The fork server's descriptor budget: how many connections its
// RLIMIT_NOFILE can carry, so that a limit the server accepts is one it
// can honour (and running out shows as RESOURCE_EXHAUSTED, not as a
// child-setup step failing with EINVAL).
//
// At start-up RaiseFdLimit() raises the soft limit to the hard limit (the
// common 1,024 soft limit fitted only ~505 running children). Then:
//
//   descriptors = kFixedFds (stdio, epoll, signalfd, listener, alive pipe,
//                 the acceptor's reserve, ...)
//               + kRequestFds (one request being carried out: up to
//                 kMaxPacketFds + its argument memfd, the report pipe, the
//                 new pidfd)
//               + kFdsPerConnection * connections
//               + kFdsPerWarmChild * warm workers (channel, pidfd)
//
// kFdsPerConnection is 4: a running child costs its connection, its pidfd
// and, while it sets up, its report pipe; the fourth is the room a
// lingering connection (forkserver/connection.h, kClosing) takes, as at
// most max_connections of them linger. ConnectionsThatFit() is the largest
// max_connections that budget allows (at least 1). Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_FD_BUDGET_H_
#define FORKSERVER_FORKSERVER_FD_BUDGET_H_

#include <cstdint>

#include "lib/ipc/seqpacket.h"

namespace forkserver {
namespace server_internal {

inline constexpr int kFixedFds = 16;
inline constexpr int kRequestFds = kMaxPacketFds + 1 + 3;
inline constexpr int kFdsPerConnection = 4;
inline constexpr int kFdsPerWarmChild = 2;

// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the soft
// limit in force afterwards (the old one when raising failed, which is
// logged). Call once, at start-up, before any fork.
int64_t RaiseFdLimit();

// The soft limit RaiseFdLimit() raised from, which every child gets back
// (ChildSetupPlan::restore_nofile_soft): a program that select()s, or
// sizes a table by its soft limit, must not inherit our raised one (Go's
// runtime restores it before exec the same way). -1 when nothing was
// raised.
int64_t FdLimitForChildren();

// The most connections `fd_limit` descriptors carry with `warm_workers`
// warm children kept (see above); >= 1.
int ConnectionsThatFit(int64_t fd_limit, int warm_workers = 0);

// Descriptors open in this process (from /proc/self/fd); -1 when even
// that directory cannot be opened (the table is full).
int CountOpenFds();

// The current soft RLIMIT_NOFILE.
int64_t FdLimit();

// True when fewer than kRequestFds descriptors are free: a request's
// descriptors could not all be received (MSG_CTRUNC) for want of room.
bool FdTableNearlyFull();

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_FD_BUDGET_H_
