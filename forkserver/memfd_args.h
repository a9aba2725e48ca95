// File: forkserver/memfd_args.h
// -----------------------------------------------------------------------------
// Reading what came in a sealed memfd because it does not fit in one
// packet: an entry argument (proto/wire.proto's arg_in_memfd) or exec
// mode's argv and env (ExecSpec.strings_in_memfd).
//
// MappedArgument::Map(fd) accepts only a regular file sealed against
// shrinking and against writes (F_SEAL_WRITE or F_SEAL_FUTURE_WRITE), of
// at most kMaxMemfdArgBytes (forkserver/request_validation.h); anything else
// is INVALID_ARGUMENT, a failed fstat or mmap the errno status. It maps the
// file read-only and private; the mapping is inherited by a forked child,
// which reads its argument from it. Move-only; unmaps on destruction.
//
//   ASSIGN_OR_RETURN(MappedArgument mapped, MappedArgument::Map(fd));
//   absl::string_view argument = mapped.view();  // valid while `mapped` is
//
// Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_MEMFD_ARGS_H_
#define FORKSERVER_FORKSERVER_MEMFD_ARGS_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace server_internal {

// Exec mode's argv and env from the memfd of ExecSpec.strings_in_memfd:
// the same checks of the memfd as Map(), at most kMaxMemfdExecBytes, a
// well-formed ExecStrings whose strings pass ValidateExecStrings (each up
// to kMaxExecStringBytes). INVALID_ARGUMENT otherwise.
absl::StatusOr<wire::ExecStrings> ReadExecStrings(int fd);

class MappedArgument {
 public:
  static absl::StatusOr<MappedArgument> Map(int fd);

  MappedArgument() = default;
  MappedArgument(MappedArgument&& other) noexcept;
  MappedArgument& operator=(MappedArgument&& other) noexcept;
  ~MappedArgument();

  // The argument's bytes; empty for an empty memfd (nothing is mapped).
  absl::string_view view() const {
    return {static_cast<const char*>(address_), size_};
  }

 private:
  void Unmap();

  void* address_ = nullptr;
  size_t size_ = 0;
};

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_MEMFD_ARGS_H_
