// File: forkserver/sandbox/status_macros.h
// -----------------------------------------------------------------------------
// RETURN_IF_ERROR / ASSIGN_OR_RETURN for this package (Abseil 20220623 has
// neither). Kept local so the package does not depend on //lib (moving).

#ifndef FORKSERVER_SANDBOX_STATUS_MACROS_H_
#define FORKSERVER_SANDBOX_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define SANDBOX_RETURN_IF_ERROR(expr)                \
  do {                                               \
    const ::absl::Status sandbox_status_ = (expr);   \
    if (!sandbox_status_.ok()) return sandbox_status_; \
  } while (false)

#define SANDBOX_CONCAT_INNER_(a, b) a##b
#define SANDBOX_CONCAT_(a, b) SANDBOX_CONCAT_INNER_(a, b)
#define SANDBOX_ASSIGN_OR_RETURN(lhs, expr) \
  SANDBOX_ASSIGN_OR_RETURN_IMPL_(SANDBOX_CONCAT_(sandbox_or_, __LINE__), lhs, expr)
#define SANDBOX_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                   \
  if (!tmp.ok()) return tmp.status();                  \
  lhs = std::move(*tmp)

#endif  // FORKSERVER_SANDBOX_STATUS_MACROS_H_
