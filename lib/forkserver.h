// File: lib/forkserver.h
// -----------------------------------------------------------------------------
// The one include most users need: Init, registration, start methods,
// Process, Pool and tasks, the fork server's client options, and the
// huge-page arena for large preloaded state.
//
//   #include "lib/forkserver.h"
//
//   FORKSERVER_PRELOAD(BuildTables) { ...; return absl::OkStatus(); }
//   FORKSERVER_ENTRY(Work, absl::string_view arg) { ...; return 0; }
//
//   int main(int argc, char** argv) {
//     if (!forkserver::Init(argc, argv).ok()) return 1;
//     forkserver::Process worker("Work", "job-17");
//     if (!worker.Start().ok() || !worker.Join().ok()) return 1;
//     return *worker.exitcode();
//   }

#ifndef FORKSERVER_LIB_FORKSERVER_H_
#define FORKSERVER_LIB_FORKSERVER_H_

#include "lib/client/fork_server_client.h"
#include "lib/init.h"
#include "lib/memory/huge_page_arena.h"
#include "lib/pool/pool.h"
#include "lib/process/process.h"
#include "lib/registry/registry.h"
#include "lib/process/start_method.h"
#include "lib/pool/task.h"

#endif  // FORKSERVER_LIB_FORKSERVER_H_
