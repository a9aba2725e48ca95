// File: lib/registry/program.h
// -----------------------------------------------------------------------------
// Who this program is: the application's argv and executable path, and
// whether forkserver::Init() has run. Init() (lib/init.h) records them once,
// before any other thread exists; the launchers below it (the fork server's
// client, the spawn start method) read them.

#ifndef FORKSERVER_LIB_REGISTRY_PROGRAM_H_
#define FORKSERVER_LIB_REGISTRY_PROGRAM_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace forkserver {

// The application's argv (argv[0] first), in every role: preloads in the
// server and spawned workers see the application's arguments, not the
// library's flags.
const std::vector<std::string>& MainArgs();

// Absolute path of the running executable (MP_MAIN_FILE for spawned
// workers).
const std::string& MainExecutablePath();

namespace internal {

// Called by Init() only, once, while the process is single-threaded.
void RecordProgram(std::vector<std::string> main_args,
                   std::string executable_path);

// OK once Init() ran in this process; FAILED_PRECONDITION otherwise,
// naming what could not be done ("start a worker with 'spawn'").
absl::Status CheckInitialized(absl::string_view what);

}  // namespace internal
}  // namespace forkserver

#endif  // FORKSERVER_LIB_REGISTRY_PROGRAM_H_
