// File: lib/process/start_method.h
// -----------------------------------------------------------------------------
// How workers are started, with multiprocessing's and billiard's semantics.
//
//   kFork        fork() the calling process. Fastest for a small caller, but
//                only safe when the caller is single-threaded: in a
//                multi-threaded caller, a lock held by another thread at
//                fork time stays locked forever in the child (the fork is
//                a raw clone3, so not even glibc's malloc locks are taken
//                across it). A Pool's own threads never hold a lock at the
//                fork of its "fork" workers (PoolCore::StartWorkerProcess);
//                the application's threads are its own affair, as with
//                Python's os.fork. Refused when
//                MULTIPROCESSING_FORKING_DISABLE is set.
//   kSpawn       fork() + execv("/proc/self/exe"): a fresh copy of the
//                application, which runs its preloads again. The child sees
//                FORKED_BY_MULTIPROCESSING=1 and MP_MAIN_FILE=<path of the
//                main executable>; MULTIPROCESSING_FORKING_DISABLE is passed
//                on with the rest of the environment, so the policy holds
//                after execv.
//   kForkServer  ask the preloaded fork server (the default).
//
// MULTIPROCESSING_FORKING_DISABLE counts as set when it is non-empty and
// not "0". When set, kFork is never used: asking for it is an error, and
// the default becomes kSpawn.

#ifndef FORKSERVER_LIB_PROCESS_START_METHOD_H_
#define FORKSERVER_LIB_PROCESS_START_METHOD_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace forkserver {

enum class StartMethod { kFork, kSpawn, kForkServer };

// Sets the process-wide default. A second call fails with
// FAILED_PRECONDITION ("start method has already been set"); kFork with
// forking disabled fails with FAILED_PRECONDITION and sets nothing.
absl::Status SetStartMethod(StartMethod method);

// The process-wide default: what SetStartMethod set, else kForkServer
// (kSpawn when forking is disabled).
StartMethod GetStartMethod();

// "fork", "spawn", "forkserver".
absl::string_view StartMethodName(StartMethod method);

// The inverse of StartMethodName; INVALID_ARGUMENT for anything else.
absl::StatusOr<StartMethod> ParseStartMethod(absl::string_view name);

// The methods usable here: all three, or spawn and forkserver when forking
// is disabled.
std::vector<StartMethod> AllowedStartMethods();

// True when MULTIPROCESSING_FORKING_DISABLE is set (see above).
bool ForkingDisabled();

// OK, or FAILED_PRECONDITION when `method` is kFork and forking is
// disabled.
absl::Status CheckStartMethodAllowed(StartMethod method);

}  // namespace forkserver

#endif  // FORKSERVER_LIB_PROCESS_START_METHOD_H_
