#include "tests/chaos/stateful_fuzzer.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "lib/base/unique_fd.h"
#include "lib/ipc/seqpacket.h"
#include "proto/wire.pb.h"
#include "tests/support/raw_send.h"

namespace forkserver {
namespace chaos {

uint64_t SeededSource::Below(uint64_t bound) {
  return bound == 0 ? 0 : random_() % bound;
}

std::string SeededSource::Bytes(size_t max) {
  std::string bytes(Below(max + 1), '\0');
  for (char& c : bytes) c = static_cast<char>(random_());
  return bytes;
}

uint64_t BytesSource::Below(uint64_t bound) {
  if (bound <= 1) return 0;
  uint64_t value = 0;
  for (int i = 0; i < 8 && size_ > 0 && (bound >> (8 * i)) > 0; ++i) {
    value = (value << 8) | *data_++;
    --size_;
  }
  return value % bound;
}

std::string BytesSource::Bytes(size_t max) {
  const size_t n = std::min<size_t>(Below(max + 1), size_);
  std::string bytes(reinterpret_cast<const char*>(data_), n);
  data_ += n;
  size_ -= n;
  return bytes;
}

namespace {

UniqueFd Connect(const std::string& path) {
  UniqueFd socket(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  if (::connect(socket.get(), reinterpret_cast<sockaddr*>(&address),
                sizeof(address)) != 0) {
    return UniqueFd();
  }
  return socket;
}

// Sends bytes with `count` fresh memfds, bypassing the library's caps (up
// to 100 descriptors: more than kMaxPacketFds, so refused).
void SendRaw(int socket, const std::string& bytes, int count) {
  // Fire and forget: a full socket or a closed peer is part of the game.
  (void)testing::SendWithMemfds(socket, bytes, count, MSG_DONTWAIT);
}

std::string Pick(Source& source, const std::vector<std::string>& choices) {
  return choices[source.Below(choices.size())];
}

std::string RandomText(Source& source) {
  switch (source.Below(5)) {
    case 0: return "";
    case 1: return "x";
    case 2: return std::string("a\0b", 3);
    case 3: return std::string(source.Below(5000), 'z');
    default: return source.Bytes(32);
  }
}

int RandomFdNumber(Source& source) {
  static const int kNumbers[] = {0, 1, 2, 3, 9, 100, -1, 1 << 16, 1 << 30};
  return kNumbers[source.Below(sizeof(kNumbers) / sizeof(kNumbers[0]))];
}

// Half of them well-formed (so that conversations get past the spawn),
// the rest with any field wrong.
std::string SpawnBytes(Source& source) {
  wire::ClientMessage message;
  wire::SpawnRequest& spawn = *message.mutable_spawn();
  if (source.Below(2) == 0) {
    spawn.set_kind(wire::SPAWN_KIND_EXEC);
    spawn.set_kill_on_disconnect(source.Below(2) == 0);
    wire::ExecSpec& exec = *spawn.mutable_exec();
    exec.set_path(Pick(source, {"/bin/true", "/bin/false", "/bin/echo"}));
    exec.add_argv("prog");
    if (source.Below(2) == 0) exec.add_argv("arg");
    if (source.Below(2) == 0) exec.add_env("A=b");
    return message.SerializeAsString();
  }
  spawn.set_kind(static_cast<wire::SpawnKind>(source.Below(4)));  // 3: unknown
  spawn.set_kill_on_disconnect(source.Below(2) == 0);
  spawn.set_survive_server(source.Below(4) == 0);
  if (source.Below(3) == 0) spawn.set_name(RandomText(source));
  if (spawn.kind() == wire::SPAWN_KIND_ENTRY || source.Below(5) == 0) {
    spawn.set_entry(Pick(source, {"", "NoSuchEntry", RandomText(source)}));
    if (source.Below(2) == 0) spawn.set_arg(RandomText(source));
    spawn.set_arg_in_memfd(source.Below(4) == 0);
  }
  if (spawn.kind() == wire::SPAWN_KIND_EXEC || source.Below(5) == 0) {
    wire::ExecSpec& exec = *spawn.mutable_exec();
    // Only programs that end by themselves.
    exec.set_path(Pick(source, {"/bin/true", "/bin/false", "/bin/echo", "",
                                "true", "/no/such/program", "/", "/etc/passwd",
                                RandomText(source)}));
    const uint64_t argc = source.Below(4);
    for (uint64_t i = 0; i < argc; ++i) {
      exec.add_argv(source.Below(3) == 0 ? RandomText(source) : "arg");
    }
    const uint64_t envc = source.Below(3);
    for (uint64_t i = 0; i < envc; ++i) {
      exec.add_env(source.Below(2) == 0 ? "A=b" : RandomText(source));
    }
    exec.set_cwd(Pick(source, {"", "/", "/no/such/dir", "relative",
                               RandomText(source)}));
  }
  const uint64_t child_fds = source.Below(4);
  for (uint64_t i = 0; i < child_fds; ++i) spawn.add_child_fds(RandomFdNumber(source));
  return message.SerializeAsString();
}

}  // namespace

void RunSequence(Source& source, const std::string& socket, SequenceStats* stats) {
  struct Connection {
    UniqueFd socket;
    bool greeted = false;
  };
  std::vector<Connection> connections;
  const uint64_t steps = 1 + source.Below(8);
  for (uint64_t step = 0; step < steps && !source.Exhausted(); ++step) {
    if (connections.empty() || (connections.size() < 3 && source.Below(4) == 0)) {
      UniqueFd connection = Connect(socket);
      if (!connection) return;
      connections.push_back({std::move(connection)});
      ++stats->connections;
    }
    const size_t which = source.Below(connections.size());
    const int fd = connections[which].socket.get();
    // Most conversations start properly, so the later stages get fuzzed.
    const bool proper_hello = !connections[which].greeted && source.Below(4) != 0;
    connections[which].greeted = true;
    int fd_count = 0;
    switch (proper_hello ? 7 : source.Below(8)) {
      case 0: fd_count = 1 + static_cast<int>(source.Below(3)); break;
      case 1: fd_count = source.Below(8) == 0 ? 100 : 0; break;
      default: fd_count = 0;
    }
    std::string bytes;
    switch (proper_hello ? 0 : source.Below(12)) {
      case 0:
      case 1:
      case 2: {  // hello variants
        wire::ClientMessage hello;
        hello.mutable_hello()->set_version(static_cast<wire::ProtocolVersion>(
            !proper_hello && source.Below(4) == 0 ? source.Below(3) : 1));
        if (!proper_hello && source.Below(6) == 0) hello.mutable_hello()->set_server_pid(42);
        bytes = hello.SerializeAsString();
        break;
      }
      case 3:
      case 4:
      case 5: bytes = SpawnBytes(source); break;
      case 6: {
        wire::ClientMessage status;
        status.mutable_status();
        bytes = status.SerializeAsString();
        break;
      }
      case 7: bytes = source.Bytes(256); break;  // garbage
      case 8: bytes = ""; break;
      case 9:
        if (source.Below(4) == 0) {
          bytes = std::string(64 * 1024 + 1 + source.Below(8192), 'o');  // oversized
        } else {
          bytes = SpawnBytes(source);
          bytes.resize(source.Below(bytes.size() + 1));  // truncated
        }
        break;
      case 10:  // premature close
        connections.erase(connections.begin() + static_cast<long>(which));
        continue;
      default: {  // read what the server said so far
        Packet packet;
        while (ReceivePacket(fd, absl::InfinitePast(), &packet).ok()) {
          wire::ServerMessage message;
          if (message.ParseFromString(packet.bytes) && message.has_spawned()) {
            ++stats->spawned;
          }
        }
        continue;
      }
    }
    SendRaw(fd, bytes, fd_count);
    ++stats->messages;
  }
  // Let the last replies come in (briefly) before closing, sometimes.
  if (source.Below(2) == 0) {
    for (Connection& connection : connections) {
      Packet packet;
      while (ReceivePacket(connection.socket.get(), absl::Now() + absl::Milliseconds(2),
                           &packet).ok()) {
      }
    }
  }
}

}  // namespace chaos
}  // namespace forkserver
