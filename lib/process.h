// File: lib/process.h
// -----------------------------------------------------------------------------
// forkserver::Process: one worker process running a registered entry point,
// with multiprocessing.Process's semantics.
//
//   FORKSERVER_ENTRY(Crunch, absl::string_view arg) { ...; return 0; }
//
//   forkserver::Process p("Crunch", "input bytes");
//   RETURN_IF_ERROR(p.Start());
//   RETURN_IF_ERROR(p.Join(absl::Seconds(30)));   // DEADLINE_EXCEEDED if
//   int code = *p.exitcode();                      // still running
//
// Exit codes: the entry's return value, or -N when killed by signal N.
// Start methods: lib/start_method.h. A Process is used by one thread at a
// time (it is not internally synchronised); separate Processes are
// independent.
//
// Lifetime: destroying a running, non-daemon Process joins it (waits for it
// to end). A running daemon Process is terminated (SIGTERM, 1 s grace, then
// SIGKILL) when destroyed or when the application exits normally; with the
// forkserver start method the server also kills it if the application dies
// abruptly.

#ifndef FORKSERVER_LIB_PROCESS_H_
#define FORKSERVER_LIB_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/child_handle.h"
#include "lib/start_method.h"

namespace forkserver {

// (A top-level struct, so `ProcessOptions options = {}` works as a default
// argument.)
struct ProcessOptions {
  // Default: "Process-N", N counting Processes made by this process.
  std::string name;
  bool daemon = false;
  // Default: GetStartMethod() at Start().
  std::optional<StartMethod> start_method;
  // {descriptor in this process, number in the child}. Everything else but
  // 0, 1 and 2 is closed in the child.
  std::vector<std::pair<int, int>> fds;
};

class Process {
 public:
  Process(std::string entry, std::string arg, ProcessOptions options = {});
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  // Starts the worker and returns once it is set up. Errors:
  // FAILED_PRECONDITION when already started (or the start method is
  // disabled); NOT_FOUND for an unknown entry; INVALID_ARGUMENT for bad
  // descriptors; UNAVAILABLE when the fork server died; RESOURCE_EXHAUSTED
  // when out of descriptors or processes; the failed setup step otherwise.
  absl::Status Start();

  // Waits for the worker to end. DEADLINE_EXCEEDED when it still runs after
  // `timeout`; FAILED_PRECONDITION before Start(); UNAVAILABLE when the
  // fork server died before reporting its exit.
  absl::Status Join(absl::Duration timeout = absl::InfiniteDuration());

  // SIGTERM / SIGKILL / any signal, through the pidfd. Sending to a worker
  // that has already ended is not an error. FAILED_PRECONDITION before
  // Start().
  absl::Status Terminate();
  absl::Status Kill();
  absl::Status Signal(int sig);

  // False before Start() and once the worker has ended.
  bool IsAlive() const;
  // nullopt before Start() and while running; then the exit code (-N for
  // signal N).
  std::optional<int> exitcode() const;
  // Resource usage of the ended worker (CPU times, peak RSS).
  std::optional<ResourceUsage> resource_usage() const;

  // 0 before Start().
  pid_t pid() const;
  // A descriptor that becomes readable when the worker ends (its pidfd);
  // -1 before Start(). Owned by the Process; valid until it is destroyed.
  int sentinel() const;
  const std::string& name() const;
  bool daemon() const;
  // The method it was (or will be) started with.
  StartMethod start_method() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_PROCESS_H_
