// The packet channel's caps and its promise to close every descriptor of a
// rejected packet.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/ipc/seqpacket.h"
#include "tests/support/raw_client.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

std::pair<UniqueFd, UniqueFd> SocketPair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

TEST(SeqpacketTest, CarriesBytesAndDescriptors) {
  auto [a, b] = SocketPair();
  auto [read_end, write_end] = testing::MakePipe();
  const int fds[] = {write_end.get()};
  ASSERT_OK(SendPacket(a.get(), "hello", fds));
  Packet packet;
  ASSERT_OK(ReceivePacket(b.get(), absl::Now() + absl::Seconds(5), &packet));
  EXPECT_EQ(packet.bytes, "hello");
  ASSERT_EQ(packet.fds.size(), 1u);
  EXPECT_TRUE(::fcntl(packet.fds[0].get(), F_GETFD) & FD_CLOEXEC);
  write_end.reset();
  ASSERT_TRUE(testing::WriteAll(packet.fds[0].get(), "via passed fd"));
  packet.fds.clear();
  EXPECT_EQ(testing::ReadUntilEof(read_end.get()), "via passed fd");
}

// A zero-length read is EOF only once the peer hung up; an empty packet
// from a live peer is malformed and says so (it used to read as EOF, and
// the server closed the connection without a reason).
TEST(SeqpacketTest, EmptyPacketFromALivePeerIsInvalidNotEof) {
  auto [a, b] = SocketPair();
  ASSERT_EQ(::send(a.get(), "", 0, 0), 0);
  Packet packet;
  EXPECT_THAT(ReceivePacket(b.get(), absl::Now() + absl::Seconds(5), &packet),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("empty packet")));
  a.reset();
  absl::Status eof =
      ReceivePacket(b.get(), absl::Now() + absl::Seconds(5), &packet);
  EXPECT_TRUE(IsPeerClosed(eof)) << eof;
}

TEST(SeqpacketTest, SenderRefusesOverCap) {
  auto [a, b] = SocketPair();
  EXPECT_THAT(SendPacket(a.get(), std::string(kMaxPacketBytes + 1, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("exceeds the cap")));
  std::vector<int> fds(kMaxPacketFds + 1, 0);
  EXPECT_THAT(SendPacket(a.get(), "x", fds),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// A packet over a cap is refused, but its descriptors are the caller's to
// close (the fork server hands them to its closer process): all of them
// arrive, none is closed by the kernel inside recvmsg, and none is leaked.
TEST(SeqpacketTest, RejectedPacketsLeaveTheirDescriptorsToTheCaller) {
  auto [a, b] = SocketPair();
  const std::vector<int> before = testing::OpenFds(::getpid());
  // Over the byte cap, with descriptors.
  testing::RawSend(a.get(), std::string(kMaxPacketBytes + 10, 'x'), 3);
  Packet packet;
  EXPECT_THAT(ReceivePacket(b.get(), absl::Now() + absl::Seconds(5), &packet),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("exceeds the cap")));
  EXPECT_EQ(packet.fds.size(), 3u);
  packet.fds.clear();
  // Over the descriptor cap.
  testing::RawSend(a.get(), "x", kMaxPacketFds + 3);
  EXPECT_THAT(ReceivePacket(b.get(), absl::Now() + absl::Seconds(5), &packet),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("at most 64")));
  EXPECT_EQ(packet.fds.size(), static_cast<size_t>(kMaxPacketFds + 3));
  packet.fds.clear();
  EXPECT_EQ(testing::OpenFds(::getpid()), before);
}

TEST(SeqpacketTest, PeerCloseAndDeadline) {
  auto [a, b] = SocketPair();
  Packet packet;
  EXPECT_THAT(ReceivePacket(b.get(), absl::Now() + absl::Milliseconds(20),
                            &packet),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(ReceivePacket(b.get(), absl::InfinitePast(), &packet),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  a.reset();
  absl::Status closed = ReceivePacket(b.get(), absl::Now() + absl::Seconds(5),
                                      &packet);
  EXPECT_TRUE(IsPeerClosed(closed)) << closed;
  EXPECT_TRUE(IsPeerClosed(SendPacket(b.get(), "x"))) << "send after close";
}

}  // namespace
}  // namespace forkserver
