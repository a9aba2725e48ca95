// File: tests/support/raw_client.h
// -----------------------------------------------------------------------------
// Talking to the fork server below the library, as a buggy or hostile
// client would: raw connections, hand-made packets.

#ifndef FORKSERVER_TESTS_SUPPORT_RAW_CLIENT_H_
#define FORKSERVER_TESTS_SUPPORT_RAW_CLIENT_H_

#include <string>

#include "lib/base/unique_fd.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace testing {

// A connected SOCK_SEQPACKET socket (test failure if connect fails).
UniqueFd RawConnect(const std::string& path);

std::string HelloBytes(
    wire::ProtocolVersion version = wire::PROTOCOL_VERSION_1);

// RawConnect + a completed hello exchange.
UniqueFd ConnectAndHello(const std::string& path);

// Sends `request` and returns the server's next message (test failure if
// none arrives within 10 s), with any descriptor in *fd.
wire::ServerMessage Exchange(int socket, const wire::ClientMessage& request,
                             UniqueFd* fd = nullptr);

// Sends `bytes` with `fd_count` fresh memfds, bypassing the library's caps.
void RawSend(int socket, const std::string& bytes, int fd_count);

// Reads until the server closes the connection; returns the last error
// message it sent ("" if none). Test failure if it never closes.
std::string ErrorBeforeClose(int socket);

}  // namespace testing
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_SUPPORT_RAW_CLIENT_H_
