// File: lib/base/status_macros.h
// -----------------------------------------------------------------------------
// RETURN_IF_ERROR / ASSIGN_OR_RETURN and errno helpers.
//
// Abseil 20220623 (Debian 12) has no status_macros.h, so these are ours. They
// evaluate their argument once and return the error status unchanged.
//
//   RETURN_IF_ERROR(DoThing());
//   ASSIGN_OR_RETURN(UniqueFd fd, OpenThing());
//   if (pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe2");

#ifndef FORKSERVER_LIB_BASE_STATUS_MACROS_H_
#define FORKSERVER_LIB_BASE_STATUS_MACROS_H_

#include <cerrno>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

#define FORKSERVER_CONCAT_INNER_(a, b) a##b
#define FORKSERVER_CONCAT_(a, b) FORKSERVER_CONCAT_INNER_(a, b)

#define RETURN_IF_ERROR(expr)                                  \
  do {                                                         \
    ::absl::Status forkserver_status_ = (expr);                \
    if (!forkserver_status_.ok()) return forkserver_status_;   \
  } while (false)

#define ASSIGN_OR_RETURN(lhs, rexpr) \
  FORKSERVER_ASSIGN_OR_RETURN_IMPL_( \
      FORKSERVER_CONCAT_(forkserver_statusor_, __LINE__), lhs, rexpr)

#define FORKSERVER_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                      \
  if (!statusor.ok()) return std::move(statusor).status();      \
  lhs = std::move(statusor).value()

namespace forkserver {

// absl::ErrnoToStatus(errno, what) with the errno captured at the call: pass
// the name of the call that failed and what it was doing ("connect(/tmp/x)").
inline absl::Status ErrnoError(absl::string_view what, int error = errno) {
  return absl::ErrnoToStatus(error, what);
}

}  // namespace forkserver

#endif  // FORKSERVER_LIB_BASE_STATUS_MACROS_H_
