// File: tests/chaos/chaos_harness.h
// -----------------------------------------------------------------------------
// The chaos suite's harness: the real daemon (tools/forkserverd) as a
// separate process on a socket in a private /tmp directory, and the
// invariants every case must leave behind, checked in TearDown:
//
//   serves     a normal spawn (/bin/true through RemoteCommand) succeeds;
//   fds        the daemon's descriptor count is back to its baseline;
//   zombies    no zombie children of the daemon or of the test;
//   ledger     every request a case made got a reply or a clear status
//              within its deadline (nothing lost, nothing hung).
//
// Every wait polls a condition against a deadline. Cases that need what
// the host may not give (root, a writable pids cgroup) skip, saying why.

#ifndef FORKSERVER_TESTS_CHAOS_CHAOS_HARNESS_H_
#define FORKSERVER_TESTS_CHAOS_CHAOS_HARNESS_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/base/unique_fd.h"

namespace forkserver {
namespace chaos {

// What the suite did, printed at the end ("load held, faults survived,
// bad inputs tried").
struct Figures {
  std::atomic<long> requests{0};      // spawn/status requests made
  std::atomic<long> answered{0};      // ... that got a reply or clear status
  std::atomic<long> faults{0};        // kills, stops, exhaustions injected
  std::atomic<long> bad_inputs{0};    // malformed packets / bad sequences
  std::atomic<long> connections{0};   // peak idle / hostile connections held
  std::atomic<long> pool_tasks{0};    // pool jobs submitted
  std::atomic<long> pool_lost{0};     // ... that ended with WorkerLost
};
Figures& GlobalFigures();

// Every request a case makes, and whether it ended in time.
struct Ledger {
  long sent = 0;
  long settled = 0;  // a reply, or a clear status, within its deadline
  std::vector<std::string> hung;  // what did not, and why
  void Sent(long n = 1);
  void Settled(long n = 1);
  void Hung(const std::string& what);
};

// Descriptors of process `pid`: how many, and how many are sockets.
struct FdSnapshot {
  int total = 0;
  int sockets = 0;
  std::vector<std::string> targets;  // readlink of each, for messages
};
FdSnapshot SnapshotFds(pid_t pid);

// Pids whose command line contains `needle` as a whole argument.
std::vector<pid_t> ProcessesWithArgument(const std::string& needle);

// The state letter of `pid` in /proc/<pid>/stat ('R', 'S', 'T', 'Z', ...);
// '?' when it is gone.
char ProcessState(pid_t pid);
// Polls until `pid` is in `state`; false at the deadline.
bool WaitState(pid_t pid, char state, absl::Time deadline);

// True while `pid` exists and is not a zombie.
bool IsRunning(pid_t pid);

// A unique `sleep` argument (seconds, with a fractional part nobody else
// uses), so processes of a case can be found in /proc.
std::string UniqueSleepSeconds(int whole_seconds);

struct DaemonOptions {
  // Where its stderr goes; -1: a log file in the test's directory.
  int stderr_fd = -1;
  // Applied in the child before exec.
  std::optional<rlimit> nofile;
  std::vector<std::string> extra_args;
};

// tools/forkserverd, started by fork+exec (only async-signal-safe code in
// between), with PR_SET_PDEATHSIG so a crashed test leaves no daemon.
class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(
      const std::string& socket, const std::string& log_path,
      const DaemonOptions& options);
  ~Daemon();  // SIGKILL and reap, if it still runs.

  pid_t pid() const { return pid_; }
  // Polls until a connection is answered; false at the deadline.
  bool WaitReady(absl::Time deadline);
  void Signal(int sig);
  // Waits for it to exit: its exit code (-N for signal N); DEADLINE_EXCEEDED.
  absl::StatusOr<int> WaitExit(absl::Duration timeout);
  bool exited() const { return exit_code_.has_value(); }

 private:
  Daemon(pid_t pid, UniqueFd pidfd, std::string socket)
      : pid_(pid), pidfd_(std::move(pidfd)), socket_(std::move(socket)) {}
  pid_t pid_;
  UniqueFd pidfd_;
  std::string socket_;
  std::optional<int> exit_code_;
};

// The fixture: a daemon per case, the invariants in TearDown.
class ChaosTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // (Re)starts the daemon on socket_ and takes its fd baseline.
  void StartDaemon(const DaemonOptions& options = {});
  // SIGTERM, then waits for exit 0.
  void StopDaemon();
  // Kills what is left of the daemon (it was the fault) and starts a new
  // one for the rest of the case and TearDown.
  void RestartDaemon(const DaemonOptions& options = {});

  // A normal spawn: /bin/true, no descriptors, OK within `timeout`.
  absl::Status NormalSpawn(absl::Duration timeout = absl::Seconds(10));
  // NormalSpawn after a fault, counted in the ledger: the case fails,
  // saying `context`, unless it is served.
  absl::Status ExpectServes(absl::string_view context);
  // Runs `send` with the daemon SIGSTOPped, so that what it sends is in
  // flight and the daemon's copies of its descriptors are the last ones
  // whatever the timing; the daemon is resumed whatever `send` did. Call
  // it under ASSERT_NO_FATAL_FAILURE.
  void WhileDaemonStopped(const std::function<void()>& send);
  // Runs forkserverctl with `args` after --socket; fd `closed` (if >= 0)
  // closed in it. Its exit code (-N: signal N) and stderr; DEADLINE_EXCEEDED
  // (and SIGKILLed) if it runs past `timeout`.
  struct CtlResult {
    int exit_code = 0;
    std::string stderr_text;
    std::string stdout_text;
    // Its stderr reached EOF before the deadline: neither ctl nor the
    // program it ran (which shares that stderr) still runs.
    bool stderr_eof = false;
  };
  absl::StatusOr<CtlResult> RunCtl(const std::vector<std::string>& args,
                                   int closed_fd, absl::Duration timeout);

  // The daemon checks of TearDown, now: alive, serves, fds at baseline, no
  // zombies under it.
  void ExpectDaemonInvariants(const std::string& context);

  // Skips TearDown's daemon checks (a case that leaves no daemon, say why).
  void NoDaemonChecks() { check_daemon_ = false; }

  std::string daemon_log() const;

  std::string dir_;     // mkdtemp("/tmp/fsc-XXXXXX")
  std::string socket_;  // dir_/run/socket
  std::unique_ptr<Daemon> daemon_;
  int baseline_fds_ = 0;
  Ledger ledger_;
  bool check_daemon_ = true;
};

// Runs `body` in a forked copy of this (single-threaded) test process, so
// that a case which hangs (a Join that never returns) is killed at
// `limit` instead of hanging the suite. gtest failures in the child are
// reported here as they happen; a child still running at `limit` is
// SIGKILLed and the case fails saying so. The child's own fork server
// (launched by the library there) dies with it.
void RunBoundedInChild(absl::Duration limit, const std::function<void()>& body);

// Reads what `fd` holds now and up to `deadline` (poll), until EOF
// (*eof says whether it got there).
std::string ReadAvailable(int fd, absl::Time deadline, bool* eof = nullptr);

// The pids cgroup (v1 /sys/fs/cgroup/pids, or a v2 unified tree with the
// pids controller) a case makes for itself, removed on destruction (its
// processes moved back to the parent first). Create() says why not when
// the host does not allow it.
class PidsCgroup {
 public:
  static absl::StatusOr<std::unique_ptr<PidsCgroup>> Create(
      const std::string& name);
  ~PidsCgroup();
  absl::Status SetMax(int max);
  absl::Status Add(pid_t pid);
  std::string path() const { return path_; }

 private:
  PidsCgroup(std::string path, std::string parent)
      : path_(std::move(path)), parent_(std::move(parent)) {}
  std::string path_, parent_;
};

}  // namespace chaos
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_CHAOS_CHAOS_HARNESS_H_
