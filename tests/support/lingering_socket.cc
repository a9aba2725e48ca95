#include "tests/support/lingering_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "gtest/gtest.h"
#include "lib/ipc/seqpacket.h"

namespace forkserver {
namespace testing {

std::pair<UniqueFd, UniqueFd> LingeringTcpSocket(int linger_seconds) {
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int small = 4096;
  ::setsockopt(listener.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof(address);
  EXPECT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), size), 0);
  EXPECT_EQ(::listen(listener.get(), 1), 0);
  EXPECT_EQ(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &size), 0);
  UniqueFd sender(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ::setsockopt(sender.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
  EXPECT_EQ(::connect(sender.get(), reinterpret_cast<sockaddr*>(&address), size), 0);
  UniqueFd peer(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
  EXPECT_TRUE(peer.valid());
  const std::string chunk(4096, 'x');
  while (::send(sender.get(), chunk.data(), chunk.size(), MSG_DONTWAIT) > 0) {
  }
  const linger on{1, linger_seconds};
  EXPECT_EQ(::setsockopt(sender.get(), SOL_SOCKET, SO_LINGER, &on, sizeof(on)), 0);
  return {std::move(sender), std::move(peer)};
}

std::pair<UniqueFd, UniqueFd> UnixSocketQueuingALingeringOne(int linger_seconds) {
  auto [sender, peer] = LingeringTcpSocket(linger_seconds);
  int pair[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd carrier(pair[0]);
  UniqueFd courier(pair[1]);
  const int inner = sender.get();
  EXPECT_TRUE(SendPacket(courier.get(), "x", {&inner, 1}).ok());
  return {std::move(carrier), std::move(peer)};  // sender, courier: closed.
}

}  // namespace testing
}  // namespace forkserver
