// File: lib/base/standard_fds.h
// -----------------------------------------------------------------------------
// Keeping the library's own descriptors off 0, 1 and 2.
//
// A process started with a standard descriptor closed (`prog <&-`) hands
// the lowest free number to the next socket, pipe or received descriptor.
// Were that one of ours, it would be passed on as a program's stdin or
// stdout: `forkserverctl run -- cat <&-` once gave cat the control socket
// as its stdin and hung. Two defences:
//   * EnsureStandardFdsOpen(): at start (Init(), forkserverctl), points
//     whichever of 0, 1, 2 is closed at /dev/null, so nothing of ours can
//     land there afterwards.
//   * MoveAboveStandardFds(): for code that may run without either (the
//     client library used on its own), a descriptor we just made that
//     landed on 0, 1 or 2 is moved above 2 (O_CLOEXEC kept).

#ifndef FORKSERVER_LIB_BASE_STANDARD_FDS_H_
#define FORKSERVER_LIB_BASE_STANDARD_FDS_H_

#include <array>

#include "absl/status/status.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

// Which of 0, 1, 2 are open right now.
std::array<bool, 3> StandardFdsOpen();

// Opens /dev/null (read-write, inheritable: it stands in for a standard
// descriptor) at every closed one of 0, 1, 2. Errors name the descriptor.
absl::Status EnsureStandardFdsOpen();

// If `fd` holds 0, 1 or 2, replaces it by a copy at 3 or above (O_CLOEXEC)
// and closes the low number. An error (EMFILE) leaves `fd` as it was.
absl::Status MoveAboveStandardFds(UniqueFd& fd);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_BASE_STANDARD_FDS_H_
