// File: lib/ipc/framed_channel.h
// -----------------------------------------------------------------------------
// Length-prefixed frames over a stream socket: a 4-byte little-endian
// length, then that many bytes. A Pool talks to each worker this way (a
// stream has no per-message size limit, unlike SOCK_SEQPACKET's socket
// buffer). Both halves batch: one read() may bring many frames, and
// Append() + Flush() sends many in one write().

#ifndef FORKSERVER_LIB_IPC_FRAMED_CHANNEL_H_
#define FORKSERVER_LIB_IPC_FRAMED_CHANNEL_H_

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace forkserver {

// Largest frame either side accepts: a bigger argument or result is an
// INVALID_ARGUMENT error for its job, not a stuck channel.
inline constexpr size_t kMaxFrameBytes = size_t{256} << 20;

class FrameReader {
 public:
  // One read() from `fd` into the buffer. Returns the bytes read: 0 means
  // EOF. EAGAIN (non-blocking fd) is UNAVAILABLE "would block"; EINTR is
  // retried unless `return_on_eintr` (a worker waiting for a task wants to
  // notice a signal).
  absl::StatusOr<size_t> Fill(int fd, bool return_on_eintr = false);

  // The next complete frame in the buffer, or nullopt. The view is valid
  // until the next Fill(). INVALID_ARGUMENT if a frame announces more than
  // kMaxFrameBytes (the stream is then unusable).
  absl::StatusOr<std::optional<absl::string_view>> Next();

  // Bytes received but not yet returned as frames.
  size_t buffered() const { return size_ - offset_; }
  // The last Fill() read less than it had room for: the socket had nothing
  // more at that moment (no need to try again before the next readiness).
  bool drained() const { return drained_; }

 private:
  // A plain growable buffer: unlike std::string::resize, growing it does
  // not zero what read() is about to overwrite.
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
  size_t size_ = 0;
  size_t offset_ = 0;
  bool drained_ = false;
};

class FrameWriter {
 public:
  // Queues one frame. INVALID_ARGUMENT over kMaxFrameBytes.
  absl::Status Append(absl::string_view frame);

  // Writes queued bytes. With a blocking fd, all of them; with a
  // non-blocking one, as many as fit (the rest stay queued). UNAVAILABLE
  // when the peer is gone (EPIPE/ECONNRESET; never SIGPIPE).
  absl::Status Flush(int fd);

  bool empty() const { return offset_ == pending_.size(); }

 private:
  std::string pending_;
  size_t offset_ = 0;
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_IPC_FRAMED_CHANNEL_H_
