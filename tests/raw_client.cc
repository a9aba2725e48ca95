#include "tests/raw_client.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "lib/seqpacket.h"

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
  std::vector<int> fds;
  for (int i = 0; i < fd_count; ++i) {
    fds.push_back(::memfd_create("test", MFD_CLOEXEC));
  }
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
  EXPECT_GE(::sendmsg(socket, &msg, MSG_NOSIGNAL), 0) << std::strerror(errno);
  for (int fd : fds) ::close(fd);
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
