// File: tests/support/raw_send.h
// -----------------------------------------------------------------------------
// One packet with `fd_count` fresh memfds attached, sent with sendmsg
// directly, bypassing the library's caps (so tests and fuzzers can send
// more descriptors than kMaxPacketFds, or oversized packets). No gtest:
// the libFuzzer driver links it too.

#ifndef FORKSERVER_TESTS_SUPPORT_RAW_SEND_H_
#define FORKSERVER_TESTS_SUPPORT_RAW_SEND_H_

#include <string>

namespace forkserver {
namespace testing {

// sendmsg's result (-1 with errno on failure); `flags` beyond
// MSG_NOSIGNAL, e.g. MSG_DONTWAIT. The memfds are closed after sending.
// `last_fd` (>= 0): one more descriptor of the caller's, attached after
// the memfds (and left open).
long SendWithMemfds(int socket, const std::string& bytes, int fd_count,
                    int flags = 0, int last_fd = -1);

}  // namespace testing
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_SUPPORT_RAW_SEND_H_
