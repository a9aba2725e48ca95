// File: forkserver/request_validation.h
// -----------------------------------------------------------------------------
// Decoding and checking what a client sends, before the server acts on it.
// Pure functions (no I/O), so the fuzz target drives exactly the code the
// server runs.

#ifndef FORKSERVER_FORKSERVER_REQUEST_VALIDATION_H_
#define FORKSERVER_FORKSERVER_REQUEST_VALIDATION_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/ipc/seqpacket.h"
#include "proto/wire.pb.h"

namespace forkserver {

// Limits on one request, beyond the packet caps of lib/seqpacket.h.
inline constexpr size_t kMaxNameBytes = 255;
inline constexpr size_t kMaxExecStrings = 4096;
// An argument passed in a memfd can be this large.
inline constexpr size_t kMaxMemfdArgBytes = size_t{1} << 30;
// Exec mode's argv and env in a memfd (ExecStrings): at most this much in
// all, and each string at most execve's own MAX_ARG_STRLEN.
inline constexpr size_t kMaxMemfdExecBytes = size_t{64} << 20;
inline constexpr size_t kMaxExecStringBytes = 128 * 1024;

// Parses one packet into a ClientMessage whose oneof is set.
// INVALID_ARGUMENT otherwise.
absl::StatusOr<wire::ClientMessage> ParseClientMessage(absl::string_view bytes);

// Checks a hello: version 1, no descriptors. FAILED_PRECONDITION for a
// version we do not speak (the message names both), INVALID_ARGUMENT
// otherwise.
absl::Status ValidateHello(const wire::Hello& hello, size_t fd_count);

// Checks exec mode's argv and env (inline, or read from their memfd): a
// non-empty argv, at most kMaxExecStrings of each, no NUL, at most
// `max_string_bytes` each, "NAME=value" environment entries.
// INVALID_ARGUMENT with the reason otherwise.
absl::Status ValidateExecStrings(
    const google::protobuf::RepeatedPtrField<std::string>& argv,
    const google::protobuf::RepeatedPtrField<std::string>& env,
    size_t max_string_bytes);

// Checks a spawn request against the number of descriptors that came with
// it: a known kind; the fields of that kind and no others; names, paths,
// arguments and environment entries without NUL bytes and within the
// limits above; "NAME=value" environment entries; child fd numbers unique,
// in [0, kMaxChildFdNumber); exactly child_fds (+1 with arg_in_memfd or
// exec.strings_in_memfd)
// descriptors; with exec.strings_in_memfd, inline argv and env empty (the
// memfd's are checked once read: ReadExecStrings, forkserver/memfd_args.h).
// INVALID_ARGUMENT with the reason otherwise.
absl::Status ValidateSpawnRequest(const wire::SpawnRequest& request,
                                  size_t fd_count);

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_REQUEST_VALIDATION_H_
