#include "lib/ipc/framed_channel.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace {

constexpr size_t kHeaderBytes = 4;
constexpr size_t kReadChunk = 64 * 1024;

uint32_t DecodeLength(const char* p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{b[0]} | uint32_t{b[1]} << 8 | uint32_t{b[2]} << 16 |
         uint32_t{b[3]} << 24;
}

}  // namespace

absl::StatusOr<size_t> FrameReader::Fill(int fd, bool return_on_eintr) {
  // Move unread bytes to the front, then make room for one more chunk.
  if (offset_ > 0) {
    std::memmove(buffer_.get(), buffer_.get() + offset_, size_ - offset_);
    size_ -= offset_;
    offset_ = 0;
  }
  if (capacity_ - size_ < kReadChunk) {
    const size_t capacity = std::max(capacity_ * 2, size_ + kReadChunk);
    std::unique_ptr<char[]> bigger(new char[capacity]);
    if (size_ > 0) std::memcpy(bigger.get(), buffer_.get(), size_);
    buffer_ = std::move(bigger);
    capacity_ = capacity;
  }
  while (true) {
    const size_t room = capacity_ - size_;
    ssize_t n = ::read(fd, buffer_.get() + size_, room);
    if (n >= 0) {
      size_ += static_cast<size_t>(n);
      drained_ = static_cast<size_t>(n) < room;
      return static_cast<size_t>(n);
    }
    if (errno == EINTR && !return_on_eintr) continue;
    if (errno == EINTR) return absl::AbortedError("interrupted");
    if (errno == EAGAIN) return absl::UnavailableError("would block");
    if (errno == ECONNRESET) return static_cast<size_t>(0);  // As EOF.
    return ErrnoError("read from a channel");
  }
}

absl::StatusOr<std::optional<absl::string_view>> FrameReader::Next() {
  if (buffered() < kHeaderBytes) return std::nullopt;
  const size_t length = DecodeLength(buffer_.get() + offset_);
  if (length > kMaxFrameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "frame of ", length, " bytes exceeds the cap of ", kMaxFrameBytes));
  }
  if (buffered() < kHeaderBytes + length) return std::nullopt;
  absl::string_view frame(buffer_.get() + offset_ + kHeaderBytes, length);
  offset_ += kHeaderBytes + length;
  return frame;
}

absl::Status FrameWriter::Append(absl::string_view frame) {
  if (frame.size() > kMaxFrameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message of ", frame.size(), " bytes exceeds the cap of ",
        kMaxFrameBytes, " bytes"));
  }
  if (offset_ == pending_.size()) {
    pending_.clear();
    offset_ = 0;
  }
  const uint32_t length = static_cast<uint32_t>(frame.size());
  const char header[kHeaderBytes] = {
      static_cast<char>(length & 0xff), static_cast<char>(length >> 8 & 0xff),
      static_cast<char>(length >> 16 & 0xff),
      static_cast<char>(length >> 24 & 0xff)};
  pending_.append(header, kHeaderBytes);
  pending_.append(frame.data(), frame.size());
  return absl::OkStatus();
}

absl::Status FrameWriter::Flush(int fd) {
  while (offset_ < pending_.size()) {
    ssize_t n = ::send(fd, pending_.data() + offset_, pending_.size() - offset_,
                       MSG_NOSIGNAL);
    if (n >= 0) {
      offset_ += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return absl::OkStatus();  // The rest stays queued.
    if (errno == EPIPE || errno == ECONNRESET) {
      return absl::UnavailableError("channel closed by the other side");
    }
    return ErrnoError("send on a channel");
  }
  pending_.clear();
  offset_ = 0;
  return absl::OkStatus();
}

}  // namespace forkserver
