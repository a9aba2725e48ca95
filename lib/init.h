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

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "lib/registry/program.h"

namespace forkserver {

absl::Status Init(int argc, char** argv);

// MainArgs() and MainExecutablePath() (lib/registry/program.h) hold what
// Init() recorded.

}  // namespace forkserver

#endif  // FORKSERVER_LIB_INIT_H_
