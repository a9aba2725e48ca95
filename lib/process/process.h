// File: lib/process/process.h
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
// Lifetime: destroying a running, non-daemon Process joins it, but only
// for ProcessOptions::destroy_join_timeout (10 s by default): a worker
// still running then is reported once on stderr, sent SIGTERM, given 1 s,
// then SIGKILLed and reaped (waiting at most 5 s more for its status: a
// process stuck in uninterruptible sleep cannot be reaped at once). So a
// destructor never blocks for ever. Join() it yourself to wait longer.
//
// Daemons: a running daemon Process is terminated (SIGTERM, 1 s grace,
// then SIGKILL) when destroyed or when the application exits normally. If
// the application dies abruptly (SIGKILL included), its daemons die too:
// with the forkserver start method the server kills them when the
// connection closes; with fork and spawn they carry PR_SET_PDEATHSIG
// (SIGKILL). Linux sends that signal when the *thread* that started the
// daemon ends, not only the process: start daemon processes from a
// thread that outlives them (the main thread, or the Pool's own).

#ifndef FORKSERVER_LIB_PROCESS_PROCESS_H_
#define FORKSERVER_LIB_PROCESS_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "lib/client/child_handle.h"
#include "lib/process/start_method.h"
#include "proto/sandbox.pb.h"
#include "proto/wire.pb.h"

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
  // How long ~Process waits for a running non-daemon worker before it
  // terminates it (SIGTERM, 1 s, SIGKILL). InfiniteDuration(): wait for
  // ever, as multiprocessing does (only when the worker surely ends).
  absl::Duration destroy_join_timeout = absl::Seconds(10);
  // Run the worker in this sandbox (proto/sandbox.proto; the profiles in
  // profiles/ parse into one with sandbox::LoadPolicyFile). Only with the
  // `forkserver` start method: the fork server keeps a template zygote
  // per policy, forked from the preloaded server, so the worker has the
  // preloaded state and registry; it forks from the template, does the
  // per-child steps (own pid namespace, reaping pid 1 if asked, rlimits,
  // cgroup limits, capabilities dropped, no_new_privs, the precompiled
  // seccomp filter) and runs the entry instead of exec. Its `fds` (its
  // channel to this process) are passed into the sandbox and are all it
  // has open besides 0..2, so it needs no filesystem view to talk back;
  // at most 16 of them. Its environment is the server's with the
  // policy's process.env applied. In its own pid namespace it is that
  // namespace's pid 1 (or, with namespaces.reaping_init, the init's only
  // child), and the kernel gives a pid 1 only the signals it handles: the
  // worker gets handlers that end it on SIGTERM, SIGHUP, SIGINT and
  // SIGQUIT, and the reaping init forwards those and SIGUSR1/SIGUSR2, so
  // Terminate() ends it with exit code 128+N (not -N). Kill() is -9 or
  // 128+9. Never weaker than asked: a policy that
  // does not validate is INVALID_ARGUMENT at Start(), a step the host
  // cannot do FAILED_PRECONDITION naming it. With `fork` or `spawn`,
  // Start() is FAILED_PRECONDITION (a sandbox is built only from the
  // single-threaded fork server; `fork` would fork a possibly threaded
  // application into namespaces, and `spawn` would need the binary and
  // its runfiles inside the view).
  std::optional<sandbox::Policy> sandbox;
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
  // `sig` to the worker's whole process group (every worker leads its own:
  // setsid), and SIGKILL to that group when the worker ends, so children
  // it left behind that ignore `sig` go too. Never by a pid that may have
  // been reused: only while the worker is unreaped (its zombie holds the
  // group's id) — by this process for fork/spawn, by the fork server for
  // forkserver workers.
  absl::Status SignalGroup(int sig);

  // False before Start() and once the worker has ended.
  bool IsAlive() const;
  // nullopt before Start() and while running; then the exit code (-N for
  // signal N).
  std::optional<int> exitcode() const;
  // Resource usage of the ended worker (CPU times, peak RSS).
  std::optional<ResourceUsage> resource_usage() const;
  // A sandboxed worker that ended: the server's execution statistics,
  // with the kill reason (wall time, CPU time, memory, pids, seccomp).
  // nullopt while it runs, and for a worker without a sandbox.
  std::optional<wire::ExecutionStats> execution_stats() const;

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
  // SIGTERM, a short grace, SIGKILL, reap (bounded).
  void EndRunning();
  std::unique_ptr<State> state_;
};

}  // namespace forkserver

#endif  // FORKSERVER_LIB_PROCESS_PROCESS_H_
