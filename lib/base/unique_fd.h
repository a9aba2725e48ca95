// File: lib/base/unique_fd.h
// -----------------------------------------------------------------------------
// UniqueFd: the one owning file-descriptor type used across forkserver.
//
// Move-only; closes its descriptor on destruction. Every descriptor the project
// creates is O_CLOEXEC from birth (pipe2, socket(SOCK_CLOEXEC), accept4,
// recvmsg(MSG_CMSG_CLOEXEC), memfd_create(MFD_CLOEXEC), ...); UniqueFd only
// owns them, it never changes their flags.

#ifndef FORKSERVER_LIB_BASE_UNIQUE_FD_H_
#define FORKSERVER_LIB_BASE_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace forkserver {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    reset(other.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing.
  int release() { return std::exchange(fd_, -1); }

  // Closes the current descriptor (if any) and owns `fd` instead. close() is
  // not retried on EINTR: on Linux the descriptor is gone either way.
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_BASE_UNIQUE_FD_H_
