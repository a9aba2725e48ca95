// File: lib/registry/entry_runner.h
// -----------------------------------------------------------------------------
// The last thing a worker does: run its entry point and exit with its
// return value. Shared by all three start methods so a worker behaves the
// same whichever way it was started.

#ifndef FORKSERVER_LIB_REGISTRY_ENTRY_RUNNER_H_
#define FORKSERVER_LIB_REGISTRY_ENTRY_RUNNER_H_

#include "absl/strings/string_view.h"
#include "lib/registry/registry.h"

namespace forkserver {

// Runs `entry(arg)` and exits the process with its return value (& 0xff).
// An exception escaping the entry is printed to stderr and exits 1 (as an
// uncaught exception does in Python's multiprocessing). stdio and iostreams
// are flushed, then _exit(): the process's atexit handlers and static
// destructors belong to the process that registered them (the fork server or
// the application), not to each worker.
[[noreturn]] void RunEntryAndExit(EntryFunction entry, absl::string_view arg,
                                  absl::string_view entry_name);

// Flushes stdout, stderr and the standard iostreams. Called before every
// fork so buffered output is not duplicated into children.
void FlushStandardStreams();

}  // namespace forkserver

#endif  // FORKSERVER_LIB_REGISTRY_ENTRY_RUNNER_H_
