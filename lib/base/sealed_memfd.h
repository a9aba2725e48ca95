// File: lib/base/sealed_memfd.h
// -----------------------------------------------------------------------------
// A memfd holding `bytes`, sealed so nobody can write, grow or shrink it
// any more: what a receiver of bulk data over a socket (the fork server)
// can map and trust not to change under it.
//
//   ASSIGN_OR_RETURN(UniqueFd fd, MakeSealedMemfd("exec-strings", bytes));
//
// MFD_CLOEXEC. RESOURCE_EXHAUSTED when out of descriptors; otherwise the
// errno status of the failed call.

#ifndef FORKSERVER_LIB_BASE_SEALED_MEMFD_H_
#define FORKSERVER_LIB_BASE_SEALED_MEMFD_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "lib/base/unique_fd.h"

namespace forkserver {

absl::StatusOr<UniqueFd> MakeSealedMemfd(const char* name,
                                         absl::string_view bytes);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_BASE_SEALED_MEMFD_H_
