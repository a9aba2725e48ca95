// Sandboxed /bin/true through the real daemon against the tools people use
// today, interleaved in one run (issue 8's speed goal): scripts/bench.sh's
// "sandboxed launch" section, through tests/bench/extra_sandbox.
//
//   sandbox_launch_bench SECONDS OUT.json FORKSERVERD PROFILE
//
// One round launches and waits for each, in turn (so every method sees the
// same background load on this shared 2-core machine):
//   posix_spawn          /bin/true, no sandbox (the floor)
//   forkserverd          RemoteCommand, no sandbox
//   forkserverd+sandbox  RemoteCommand with PROFILE (build_action: the
//                        bwrap shape below plus seccomp, rlimits,
//                        no_new_privs): forked from the policy's template
//   no template          every sandbox step in the child, per launch
//                        (forkserver/sandbox/launcher.h), in this process
//   bwrap                --unshare-user --unshare-pid --unshare-ipc
//                        --unshare-uts --ro-bind / / --tmpfs /tmp
//                        --proc /proc --dev /dev
//   firejail             --quiet --noprofile (every 10th round: slow)
// Writes {"title", "rows", "note"}: p50/p99 per method and each p50's
// ratio to the sandboxed daemon launch. Numbers only; nothing asserted.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "forkserver/sandbox/compiled_sandbox.h"
#include "forkserver/sandbox/launcher.h"
#include "forkserver/sandbox/policy_parser.h"
#include "lib/client/fork_server_client.h"
#include "lib/client/remote_command.h"
#include "lib/forkserver.h"
#include "tests/bench/bench_samples.h"

extern char** environ;

namespace forkserver {
namespace {

struct Method {
  std::string name;
  std::function<absl::Status()> once;
  int every = 1;  // Sampled in every Nth round only.
  std::vector<double> micros = {};
};

// posix_spawn + waitpid; OK when it exited 0. `quiet`: its stderr to
// /dev/null (firejail prints a banner on some hosts).
absl::Status SpawnAndWait(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (int e = ::posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ); e != 0) {
    return absl::ErrnoToStatus(e, absl::StrCat("posix_spawn ", argv[0]));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(absl::StrCat(argv[0], " failed: wait status ", status));
  }
  return absl::OkStatus();
}

absl::Status Remote(const std::string& socket, const CommandSpec& spec) {
  absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket, spec);
  if (!command.ok()) return command.status();
  absl::StatusOr<int> exit = command->Wait();
  if (!exit.ok()) return exit.status();
  if (*exit != 0) return absl::InternalError(absl::StrCat("exit ", *exit));
  return absl::OkStatus();
}

absl::Status PerLaunch(const sandbox::CompiledSandbox& compiled) {
  absl::StatusOr<std::unique_ptr<sandbox::SandboxedProcess>> process =
      sandbox::LaunchSandboxed(compiled, nullptr, {"/bin/true"});
  if (!process.ok()) return process.status();
  absl::StatusOr<sandbox::SandboxResult> result = sandbox::WaitSandboxed(**process);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) return absl::InternalError("sandboxed /bin/true failed");
  return absl::OkStatus();
}

// forkserverd on a private socket, up once it accepts.
class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(const std::string& binary) {
    auto daemon = std::unique_ptr<Daemon>(new Daemon());
    char dir[] = "/tmp/fsd-sandbox-bench-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return absl::ErrnoToStatus(errno, "mkdtemp");
    daemon->dir_ = dir;
    daemon->socket_ = daemon->dir_ + "/socket";
    const std::string flag = "--socket=" + daemon->socket_;
    char* args[] = {const_cast<char*>(binary.c_str()), const_cast<char*>(flag.c_str()), nullptr};
    if (int e = ::posix_spawn(&daemon->pid_, args[0], nullptr, nullptr, args, environ); e != 0) {
      return absl::ErrnoToStatus(e, "posix_spawn " + binary);
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!internal::ConnectToSocket(daemon->socket_).ok()) {
      if (absl::Now() > deadline) return absl::DeadlineExceededError("forkserverd did not come up");
      absl::SleepFor(absl::Milliseconds(5));
    }
    return daemon;
  }
  ~Daemon() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);  // Our own unreaped child: the pid is ours.
      ::waitpid(pid_, nullptr, 0);
    }
    ::unlink(socket_.c_str());
    ::rmdir(dir_.c_str());
  }
  const std::string& socket() const { return socket_; }

 private:
  Daemon() = default;
  pid_t pid_ = -1;
  std::string dir_, socket_;
};

double LoadAverage() {
  double load = 0;
  std::ifstream("/proc/loadavg") >> load;
  return load;
}

int Main(double seconds, const std::string& out, const std::string& daemon_binary,
         const std::string& profile) {
  absl::StatusOr<sandbox::Policy> policy = sandbox::LoadPolicyFile(profile);
  if (!policy.ok()) {
    std::fprintf(stderr, "%s\n", policy.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<sandbox::CompiledSandbox>> compiled =
      sandbox::CompiledSandbox::Create(*policy);
  if (!compiled.ok()) {
    std::fprintf(stderr, "%s\n", compiled.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Daemon>> daemon = Daemon::Start(daemon_binary);
  if (!daemon.ok()) {
    std::fprintf(stderr, "%s\n", daemon.status().ToString().c_str());
    return 1;
  }
  const std::string socket = (*daemon)->socket();
  CommandSpec plain;
  plain.argv = {"/bin/true"};
  plain.fds = {};
  CommandSpec sandboxed = plain;
  sandboxed.policy = *policy;

  std::vector<Method> methods;
  methods.push_back({"posix_spawn /bin/true (no sandbox)", [] {
                       return SpawnAndWait({"/bin/true"});
                     }});
  methods.push_back({"forkserverd, no sandbox", [&] { return Remote(socket, plain); }});
  methods.push_back({"forkserverd, sandboxed (template)", [&] {
                       return Remote(socket, sandboxed);
                     }});
  methods.push_back({"same sandbox, no template (every step per launch)", [&] {
                       return PerLaunch(**compiled);
                     }});
  std::string missing;
  if (::access("/usr/bin/bwrap", X_OK) == 0) {
    methods.push_back({"bwrap, same shape without seccomp", [] {
                         return SpawnAndWait({"/usr/bin/bwrap", "--unshare-user", "--unshare-pid",
                                              "--unshare-ipc", "--unshare-uts", "--ro-bind", "/",
                                              "/", "--tmpfs", "/tmp", "--proc", "/proc", "--dev",
                                              "/dev", "/bin/true"});
                       }});
  } else {
    missing += " bwrap";
  }
  if (::access("/usr/bin/firejail", X_OK) == 0) {
    methods.push_back({"firejail --quiet --noprofile", [] {
                         return SpawnAndWait(
                             {"/usr/bin/firejail", "--quiet", "--noprofile", "/bin/true"});
                       },
                       10});
  } else {
    missing += " firejail";
  }
  // Two warm-up rounds (the template is built in the first), then rounds
  // until the time is up (at least 50).
  const double load_before = LoadAverage();
  const absl::Time end = absl::Now() + absl::Seconds(seconds) * methods.size();
  for (int round = -2; round < 50 || absl::Now() < end; ++round) {
    for (Method& m : methods) {
      if (round >= 0 && round % m.every != 0) continue;
      const absl::Time start = absl::Now();
      if (absl::Status done = m.once(); !done.ok()) {
        std::fprintf(stderr, "%s: %s\n", m.name.c_str(), done.ToString().c_str());
        return 1;
      }
      if (round >= 0) m.micros.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
    }
  }
  const double load_after = LoadAverage();
  const double ours = bench::QuantileOf(methods[2].micros, 0.5);
  std::string rows;
  for (Method& m : methods) {
    bench::DumpSamples(m.name, m.micros);
    const double p50 = bench::QuantileOf(m.micros, 0.5);
    absl::StrAppend(&rows, rows.empty() ? "" : ",\n",
                    absl::StrFormat("    {\"method\": \"%s\", \"n\": %d, \"p50 us\": %.0f, "
                                    "\"p99 us\": %.0f, \"p50 / sandboxed forkserverd\": "
                                    "\"%.2fx\"}",
                                    m.name, m.micros.size(), p50,
                                    bench::QuantileOf(m.micros, 0.99), p50 / ours));
    std::fprintf(stderr, "%-52s n=%4zu p50 %7.0f us  p99 %7.0f us  %.2fx\n", m.name.c_str(),
                 m.micros.size(), p50, bench::QuantileOf(m.micros, 0.99), p50 / ours);
  }
  std::ofstream file(out);
  file << "{\n  \"title\": \"Sandboxed launch of /bin/true: forkserverd's templates vs "
          "bubblewrap and firejail\",\n"
       << "  \"rows\": [\n" << rows << "\n  ],\n"
       << "  \"note\": \"Launch + wait, methods interleaved round by round; profile "
       << profile
       << " (user, pid, mount, ipc, uts namespaces; ro bind of /, tmpfs /tmp, /proc, /dev; "
          "seccomp block list, rlimits, no_new_privs). Load average "
       << absl::StrFormat("%.1f -> %.1f", load_before, load_after)
       << ". Goal (issue 8): sandboxed forkserverd p50 <= 1 ms and >= 3.5x faster than "
          "bwrap."
       << (missing.empty() ? "" : absl::StrCat(" Not installed:", missing, "."))
       << "\"\n}\n";
  return file.good() ? 0 : 1;
}

}  // namespace
}  // namespace forkserver

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s SECONDS OUT.json FORKSERVERD PROFILE\n", argv[0]);
    return 2;
  }
  return forkserver::Main(std::atof(argv[1]), argv[2], argv[3], argv[4]);
}
