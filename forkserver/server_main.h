// File: forkserver/server_main.h
// -----------------------------------------------------------------------------
// Server mode of an application binary. The client library launches
//
//   <app> --forkserver-serve --socket=PATH --alive-fd=N --ready-fd=M
//         [--lock-fd=L] [--remove-socket-directory] [--warm-workers=K]
//         [--unset-ld-bind-now] [-- <the application's argv>]
//
// L, when given, is the socket's lock (forkserver/listener.h), taken by the
// launcher so that no reclaimer mistakes the new directory for a dead
// server's; the server keeps it for its life.
//
// --unset-ld-bind-now: the launcher set LD_BIND_NOW=1
// (ForkServerOptions::bind_symbols_at_launch: the dynamic linker bound
// every symbol once, here, not in every worker); it is removed from the
// environment first thing, so that getenv in preloads and workers, and
// the environments they pass on, are the application's.
//
// and forkserver::Init() hands such an argv to ServerMain(), which:
//   1. closes every descriptor but 0, 1, 2 and those given (whatever the
//      launcher leaked), and points stdin at /dev/null;
//   2. runs the registered preloads, once;
//   3. checks it is still single-threaded, listens on PATH;
//   4. writes "R" to the ready fd and closes it -- or, when 2 or 3 failed,
//      "F<reason>" and exits 3;
//   5. serves (forkserver/server.h) until the alive fd reaches EOF or it
//      gets SIGTERM, then exits 0.

#ifndef FORKSERVER_FORKSERVER_SERVER_MAIN_H_
#define FORKSERVER_FORKSERVER_SERVER_MAIN_H_

namespace forkserver {

inline constexpr char kServeFlag[] = "--forkserver-serve";
inline constexpr char kUnsetBindNowFlag[] = "--unset-ld-bind-now";

// Exit code of a server that could not start (preload or listen failed).
inline constexpr int kServerStartFailedExitCode = 3;

// argv[1] must be kServeFlag. Never returns.
[[noreturn]] void ServerMain(int argc, char** argv);

}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_SERVER_MAIN_H_
