// File: lib/pool/pool_options_check.h
// -----------------------------------------------------------------------------
// Checking a Pool's options and a call's options before anything starts:
// every bad value is INVALID_ARGUMENT (or NOT_FOUND for an unregistered
// hook) naming the option, so a typo never becomes a silent default.

#ifndef FORKSERVER_LIB_POOL_POOL_OPTIONS_CHECK_H_
#define FORKSERVER_LIB_POOL_POOL_OPTIONS_CHECK_H_

#include "absl/status/status.h"
#include "lib/pool/pool.h"

namespace forkserver {
namespace internal {

absl::Status ValidatePoolOptions(const PoolOptions& options);
absl::Status ValidateCallOptions(const CallOptions& options);

// options.processes, or the number of CPUs when it is 0.
int ProcessCount(const PoolOptions& options);

}  // namespace internal
}  // namespace forkserver

#endif  // FORKSERVER_LIB_POOL_POOL_OPTIONS_CHECK_H_
