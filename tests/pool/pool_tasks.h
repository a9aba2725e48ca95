// File: tests/pool/pool_tasks.h
// -----------------------------------------------------------------------------
// Tasks, initializers and hooks the pool tests run (registered in
// pool_tasks.cc, linked into every pool test binary with alwayslink).

#ifndef FORKSERVER_TESTS_POOL_POOL_TASKS_H_
#define FORKSERVER_TESTS_POOL_POOL_TASKS_H_

#include <string>

#include "lib/forkserver.h"
#include "tests/proto/test_messages.pb.h"

namespace forkserver {
namespace testing {

// Tasks (all registered by their names):
//   Square(int) -> int
//   Add(int, int) -> int
//   Echo(std::string) -> std::string
//   SquareMessage(SquareRequest) -> SquareReply   Protobuf in and out
//   IgnoreSigtermAndSleep(int ms) -> int       SIG_IGN for SIGTERM, then sleeps
//   TouchFile(std::string path) -> int         creates `path`, returns its pid
//   WorkerPid(int) -> int                      the worker's pid
//   WorkerIndex(int) -> int                    TaskContext::worker_index()
//   FailWith(std::string) -> error INVALID_ARGUMENT with that message
//   ThrowRuntimeError(std::string) -> throws std::runtime_error
//   SleepMillis(int) -> int pid                sleeps, then returns its pid
//   SleepUntilSoftLimit(int max_ms) -> std::string
//        "recovered" when the soft limit interrupted it, else "finished"
//   IgnoreSoftLimit(int ms) -> int             sleeps through SIGUSR1
//   ExitWorker(int code) -> never returns      _exit(code); code < 0: raise(-code)
//   AllocateMib(int) -> int pid                touches that much memory
//   ForkGrandchild(std::string path)           forks a sleeping grandchild (in
//                                              its process group), writes its pid
//                                              to `path`, then sleeps forever
//   CountInitializerRuns(int) -> int           runs of InitCounter in this worker

// Initializers: InitCounter (counts runs), InitFails (always fails).
// Exit hook: RecordExit (appends "<pid> <code>\n" to the file named by
// $FORKSERVER_TEST_EXIT_LOG).

}  // namespace testing
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_POOL_POOL_TASKS_H_
