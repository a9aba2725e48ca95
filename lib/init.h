// File: lib/init.h
// -----------------------------------------------------------------------------
// forkserver::Init(): the first thing an application's main() calls.
//
//   int main(int argc, char** argv) {
//     if (absl::Status s = forkserver::Init(argc, argv); !s.ok()) {
//       std::cerr << s << "\n";
//       return 1;
//     }
//     ...  // The application proper.
//   }
//
// The same binary plays three roles, and Init() tells them apart:
//   * the application: Init() returns OK;
//   * the fork server (argv[1] == "--forkserver-serve", launched by the
//     library): Init() serves and exits the process, never returning;
//   * a spawned worker (argv[1] == "--forkserver-worker-fd=N" and
//     FORKED_BY_MULTIPROCESSING=1, start method "spawn"): Init() runs the
//     preloads and the entry point and exits, never returning.
// It fails (and the application should exit) when two registrations share
// a name. Starting a worker with "spawn" or "forkserver" without Init()
// having run is an error, not a fork bomb.
//
// In server mode every inherited descriptor but 0, 1, 2 is closed before
// the preloads run: static initialisers must not keep descriptors that
// are needed later.

#ifndef FORKSERVER_LIB_INIT_H_
#define FORKSERVER_LIB_INIT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace forkserver {

absl::Status Init(int argc, char** argv);

// The application's argv (argv[0] first), in every role: preloads in the
// server and spawned workers see the application's arguments, not the
// library's flags.
const std::vector<std::string>& MainArgs();

// Absolute path of the running executable (MP_MAIN_FILE for spawned
// workers).
const std::string& MainExecutablePath();

namespace internal {
// OK once Init() ran in this process; FAILED_PRECONDITION otherwise,
// naming what could not be done ("start a worker with 'spawn'").
absl::Status CheckInitialized(absl::string_view what);
}  // namespace internal

}  // namespace forkserver

#endif  // FORKSERVER_LIB_INIT_H_
