// libFuzzer target: one packet as the fork server receives it, through the
// same decode and validation code the server runs (framing is covered by
// seqpacket_test; the fork itself is not fuzzed).
//
// Input: byte 0 is the number of descriptors the packet claims to have
// come with (mod kMaxPacketFds + 1); the rest is the payload.

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "forkserver/request_validation.h"
#include "lib/ipc/seqpacket.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0 || size > forkserver::kMaxPacketBytes + 1) return 0;
  const size_t fd_count = data[0] % (forkserver::kMaxPacketFds + 1);
  const absl::string_view bytes(reinterpret_cast<const char*>(data) + 1,
                                size - 1);
  auto message = forkserver::ParseClientMessage(bytes);
  if (!message.ok()) return 0;
  switch (message->msg_case()) {
    case forkserver::wire::ClientMessage::kHello:
      (void)forkserver::ValidateHello(message->hello(), fd_count);
      break;
    case forkserver::wire::ClientMessage::kSpawn:
      (void)forkserver::ValidateSpawnRequest(message->spawn(), fd_count);
      break;
    default:
      break;
  }
  return 0;
}
