#include "tests/support/raw_client.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "lib/ipc/seqpacket.h"
#include "tests/support/raw_send.h"

namespace forkserver {
namespace testing {

UniqueFd RawConnect(const std::string& path) {
  UniqueFd socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address),
                sizeof(address)) != 0) {
    ADD_FAILURE() << "connect(" << path << "): " << std::strerror(errno);
  }
  return socket;
}

std::string HelloBytes(wire::ProtocolVersion version) {
  wire::ClientMessage hello;
  hello.mutable_hello()->set_version(version);
  return hello.SerializeAsString();
}

UniqueFd ConnectAndHello(const std::string& path) {
  UniqueFd socket = RawConnect(path);
  wire::ClientMessage hello;
  hello.mutable_hello()->set_version(wire::PROTOCOL_VERSION_1);
  wire::ServerMessage reply = Exchange(socket.get(), hello);
  EXPECT_TRUE(reply.has_hello()) << reply.DebugString();
  return socket;
}

wire::ServerMessage Exchange(int socket, const wire::ClientMessage& request,
                             UniqueFd* fd) {
  wire::ServerMessage reply;
  absl::Status sent = SendPacket(socket, request.SerializeAsString());
  EXPECT_TRUE(sent.ok()) << sent;
  Packet packet;
  absl::Status received =
      ReceivePacket(socket, absl::Now() + absl::Seconds(10), &packet);
  EXPECT_TRUE(received.ok()) << received;
  EXPECT_TRUE(reply.ParseFromString(packet.bytes));
  if (fd != nullptr && !packet.fds.empty()) *fd = std::move(packet.fds[0]);
  return reply;
}

void RawSend(int socket, const std::string& bytes, int fd_count) {
  EXPECT_GE(SendWithMemfds(socket, bytes, fd_count), 0) << std::strerror(errno);
}

std::string ErrorBeforeClose(int socket) {
  std::string error;
  for (int i = 0; i < 4; ++i) {
    Packet packet;
    absl::Status received =
        ReceivePacket(socket, absl::Now() + absl::Seconds(10), &packet);
    if (IsPeerClosed(received)) return error;
    if (!received.ok()) {
      ADD_FAILURE() << "waiting for the server to close: " << received;
      return error;
    }
    wire::ServerMessage message;
    if (message.ParseFromString(packet.bytes) && message.has_error()) {
      error = message.error().message();
    }
  }
  ADD_FAILURE() << "server kept the connection open";
  return error;
}

}  // namespace testing
}  // namespace forkserver
