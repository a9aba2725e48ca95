// File: lib/registry/preload.h
// -----------------------------------------------------------------------------
// Runs the registered preload functions (lib/registry.h) in this process,
// at most once.

#ifndef FORKSERVER_LIB_REGISTRY_PRELOAD_H_
#define FORKSERVER_LIB_REGISTRY_PRELOAD_H_

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace forkserver {

// Runs every registered preload, in name order, the first time it is
// called; later calls return the first call's result. A failure names the
// preload: FAILED_PRECONDITION "preload 'LoadModel' failed: <its status>".
// An exception escaping a preload is caught: FAILED_PRECONDITION "preload
// 'LoadModel' threw std::runtime_error: <what()>".
// Thread-safe.
absl::Status RunPreloadsOnce();

// How long the preloads took (zero before they ran).
absl::Duration PreloadDuration();

}  // namespace forkserver

#endif  // FORKSERVER_LIB_REGISTRY_PRELOAD_H_
