// File: tests/support/lingering_socket.h
// -----------------------------------------------------------------------------
// Descriptors whose close() blocks, for tests that the fork server never
// closes one in its own thread (forkserver/client_fd_closer.h).

#ifndef FORKSERVER_TESTS_SUPPORT_LINGERING_SOCKET_H_
#define FORKSERVER_TESTS_SUPPORT_LINGERING_SOCKET_H_

#include <utility>

#include "lib/base/unique_fd.h"

namespace forkserver {
namespace testing {

// A TCP connection on 127.0.0.1 whose peer never reads: {our end, with its
// send queue full and SO_LINGER on for `linger_seconds`, the peer}. The
// last close() of our end blocks for the linger time while the peer lives.
std::pair<UniqueFd, UniqueFd> LingeringTcpSocket(int linger_seconds);

// A Unix socket that holds such a TCP socket in its receive queue (sent
// with SCM_RIGHTS, our copy closed): the last close() of it releases the
// queued socket in the closing thread, and blocks as above. Returns {the
// Unix socket, the TCP peer (keep it open while the close should block)}.
std::pair<UniqueFd, UniqueFd> UnixSocketQueuingALingeringOne(int linger_seconds);

}  // namespace testing
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_SUPPORT_LINGERING_SOCKET_H_
