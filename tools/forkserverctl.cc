// forkserverctl: talks to a fork server (forkserverd) at --socket.
//
//   forkserverctl --socket=PATH status [--json]
//       The server's pid, uptime, children, spawns, connections, open fds,
//       rejected connections and why the last one was; --json: one object
//       with the StatusReply's field names (proto/wire.proto).
//   forkserverctl --socket=PATH run [--cwd=DIR] -- PROGRAM [ARGS...]
//       Runs PROGRAM through the server with our stdin/stdout/stderr,
//       environment and working directory (or DIR); PROGRAM is looked up
//       here, as execvp does. Exits with its exit code (128+N when killed
//       by N); 127 when PROGRAM is not found, 126 when it cannot be
//       executed (the reason on stderr), as shells do.
//   forkserverctl --socket=PATH run --profile=FILE [--stats [--json]] -- PROGRAM ARGS
//       The same, sandboxed by the textproto profile FILE (a template
//       zygote in the server, proto/sandbox.proto). The kill reason, when
//       there is one, goes to stderr; --stats prints the execution
//       statistics (a table, or one JSON object with --json) to stderr.
//   forkserverctl --socket=PATH bench [--n=1000] -- PROGRAM [ARGS...]
//       Runs PROGRAM N times through the server, then N times with a local
//       fork+exec and a local posix_spawn, in the same run; prints p50/p99
//       of each. --client_mib=M makes this process big first.

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "lib/base/standard_fds.h"
#include "lib/client/fork_server_client.h"
#include "lib/client/launch_failure.h"
#include "lib/client/remote_command.h"
#include "lib/ipc/seqpacket.h"
#include "proto/wire.pb.h"
#include "tools/latency_stats.h"
#include "tools/run_stats.h"

ABSL_FLAG(std::string, socket, "", "the fork server's socket (required)");
ABSL_FLAG(std::string, cwd, "",
          "run: working directory of the program (default: ours)");
ABSL_FLAG(bool, json, false, "status, run --stats: one JSON object instead of text");
ABSL_FLAG(int, n, 1000, "bench: runs per variant");
ABSL_FLAG(std::string, profile, "", "run/bench: sandbox profile (textproto) to run it in");
ABSL_FLAG(bool, stats, false, "run: print execution statistics to stderr");
ABSL_FLAG(int, client_mib, 0,
          "bench: memory this process holds (touched) while measuring, MiB; "
          "fork+exec from a big process is what the daemon saves");

extern char** environ;

namespace forkserver {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "forkserverctl: %s\n", status.ToString().c_str());
  return 1;
}

int ShellExitCode(int exitcode) {
  return exitcode < 0 ? 128 - exitcode : exitcode;
}

// Every field of the reply, the templates and counters added since
// included, under the proto's own field names (Protobuf's JSON mapping:
// 64-bit counters as strings).
void PrintStatusJson(const wire::StatusReply& s) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(s, &json, options);
  if (json.empty() || json.back() != '\n') json += '\n';
  std::fputs(json.c_str(), stdout);
}

void PrintStatusText(const wire::StatusReply& s) {
  std::printf(
      "pid %d\nuptime %s\nlive children %d\nspawned %lld\nconnections %d\n"
      "open fds %d\nrejected %lld%s%s\n",
      s.server_pid(),
      absl::FormatDuration(absl::Microseconds(s.uptime_usec())).c_str(),
      s.live_children(), static_cast<long long>(s.spawned_total()),
      s.open_connections(), s.open_fds(),
      static_cast<long long>(s.rejected_total()),
      s.last_rejection().empty() ? "" : " (last: ",
      s.last_rejection().empty() ? ""
                                 : (s.last_rejection() + ")").c_str());
  std::printf("max connections %d\nfd limit %lld\nlog lines dropped %lld\n"
              "orphans reaped %lld\naccepted connections %lld\n",
              s.max_connections(), static_cast<long long>(s.fd_limit()),
              static_cast<long long>(s.log_lines_dropped()),
              static_cast<long long>(s.orphans_reaped()),
              static_cast<long long>(s.accepted_total()));
  std::printf("warm workers %d/%d ready%s\nwarm hits %lld\n"
              "warm idle deaths %lld\n",
              s.warm_ready(), s.warm_target(),
              s.warm_disabled() ? " (disabled: they kept dying)" : "",
              static_cast<long long>(s.warm_hits()),
              static_cast<long long>(s.warm_idle_deaths()));
  PrintTemplates(s);
}

int Status(const std::string& socket) {
  absl::StatusOr<internal::ServerConnection> connection =
      internal::ConnectToSocket(socket);
  if (!connection.ok()) return Fail(connection.status());
  wire::ClientMessage request;
  request.mutable_status();
  absl::StatusOr<internal::ServerReply> reply = connection->Request(request);
  if (!reply.ok()) return Fail(reply.status());
  if (absl::GetFlag(FLAGS_json)) {
    PrintStatusJson(reply->message.status());
  } else {
    PrintStatusText(reply->message.status());
  }
  return 0;
}

int Run(const std::string& socket, std::vector<std::string> argv) {
  CommandSpec spec;
  spec.argv = std::move(argv);
  // The program gets our 0, 1 and 2 (the default). One we were started
  // without is /dev/null by now (main), never a descriptor of ours: a
  // request cannot ask for a closed one, since the server's child keeps
  // its own 0-2 when none is passed.
  spec.cwd = absl::GetFlag(FLAGS_cwd);
  if (absl::Status read = ReadProfile(absl::GetFlag(FLAGS_profile), spec); !read.ok()) {
    return Fail(read);
  }
  absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket, spec);
  if (!command.ok()) {
    // As a shell: 127 for a program not found, 126 for one that cannot be
    // executed, with the reason on stderr.
    if (std::optional<int> code =
            ShellExitCodeForLaunchFailure(command.status())) {
      std::fprintf(stderr, "forkserverctl: %s: %s\n", spec.argv[0].c_str(),
                   std::string(command.status().message()).c_str());
      return *code;
    }
    return Fail(NameProfile(command.status(), absl::GetFlag(FLAGS_profile)));
  }
  absl::StatusOr<int> exitcode = command->Wait();
  if (!exitcode.ok()) return Fail(exitcode.status());
  if (command->stats().has_value()) {
    PrintStats(*command->stats(), absl::GetFlag(FLAGS_stats), absl::GetFlag(FLAGS_json));
  }
  return ShellExitCode(*exitcode);
}

absl::StatusOr<absl::Duration> LocalForkExec(const std::string& program,
                                             std::vector<char*>& argv) {
  const absl::Time start = absl::Now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execve(program.c_str(), argv.data(), environ);
    ::_exit(127);
  }
  if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
  int status;
  ::waitpid(pid, &status, 0);
  return absl::Now() - start;
}

absl::StatusOr<absl::Duration> LocalSpawn(const std::string& program,
                                          std::vector<char*>& argv) {
  const absl::Time start = absl::Now();
  pid_t pid;
  if (int error = ::posix_spawn(&pid, program.c_str(), nullptr, nullptr,
                                argv.data(), environ);
      error != 0) {
    return absl::ErrnoToStatus(error, "posix_spawn");
  }
  int status;
  ::waitpid(pid, &status, 0);
  return absl::Now() - start;
}

// A status request and its reply on a kept connection to the daemon.
absl::StatusOr<absl::Duration> StatusRoundTrip(const std::string& socket) {
  const absl::Time start = absl::Now();
  absl::StatusOr<internal::ServerConnection> connection =
      internal::ReuseOrConnectToSocket(socket);
  if (!connection.ok()) return connection.status();
  wire::ClientMessage request;
  request.mutable_status();
  absl::StatusOr<internal::ServerReply> reply = connection->Request(request);
  if (!reply.ok()) return reply.status();
  connection->Release();
  return absl::Now() - start;
}

int Bench(const std::string& socket, std::vector<std::string> argv) {
  const int n = absl::GetFlag(FLAGS_n);
  absl::StatusOr<std::string> program = ResolveProgram(argv[0]);
  if (!program.ok()) return Fail(program.status());
  std::vector<char> ballast(static_cast<size_t>(absl::GetFlag(FLAGS_client_mib)) << 20);
  for (size_t i = 0; i < ballast.size(); i += 4096) ballast[i] = 1;
  CommandSpec spec;
  spec.argv = argv;
  if (absl::Status read = ReadProfile(absl::GetFlag(FLAGS_profile), spec); !read.ok()) {
    return Fail(read);
  }
  std::vector<absl::Duration> remote, round_trip, forked, local;
  std::vector<char*> cargv;
  for (std::string& arg : argv) cargv.push_back(arg.data());
  cargv.push_back(nullptr);
  // The fast variants interleaved, one of each per round: load from
  // elsewhere on the machine falls on them alike, so their ratios hold.
  // Local fork + exec runs after them: from a large client it copies the
  // page tables for hundreds of milliseconds, which would disturb the
  // others' caches.
  for (int i = 0; i < n; ++i) {
    const absl::Time start = absl::Now();
    absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket, spec);
    if (!command.ok()) return Fail(command.status());
    absl::StatusOr<int> exitcode = command->Wait();
    if (!exitcode.ok()) return Fail(exitcode.status());
    remote.push_back(absl::Now() - start);
    // Part of the floor under the remote launch: one request and reply
    // on the kept connection, no launch (a status request).
    absl::StatusOr<absl::Duration> trip = StatusRoundTrip(socket);
    if (!trip.ok()) return Fail(trip.status());
    round_trip.push_back(*trip);
    absl::StatusOr<absl::Duration> took = LocalSpawn(*program, cargv);
    if (!took.ok()) return Fail(took.status());
    local.push_back(*took);
  }
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<absl::Duration> took = LocalForkExec(*program, cargv);
    if (!took.ok()) return Fail(took.status());
    forked.push_back(*took);
  }
  std::printf("%-28s %10s %10s\n",
              absl::StrCat("run + wait (n=", n, ")").c_str(), "p50", "p99");
  std::printf("%-28s %10s %10s\n", "through forkserverd",
              FormatLatency(Quantile(remote, 0.5)).c_str(),
              FormatLatency(Quantile(remote, 0.99)).c_str());
  std::printf("%-28s %10s %10s\n", "status round trip",
              FormatLatency(Quantile(round_trip, 0.5)).c_str(),
              FormatLatency(Quantile(round_trip, 0.99)).c_str());
  std::printf("%-28s %10s %10s\n", "local fork + exec",
              FormatLatency(Quantile(forked, 0.5)).c_str(),
              FormatLatency(Quantile(forked, 0.99)).c_str());
  std::printf("%-28s %10s %10s\n", "local posix_spawn",
              FormatLatency(Quantile(local, 0.5)).c_str(),
              FormatLatency(Quantile(local, 0.99)).c_str());
  return 0;
}

}  // namespace
}  // namespace forkserver

int main(int argc, char** argv) {
  // First: a closed 0, 1 or 2 would otherwise be taken by our control
  // socket and handed to the program (`run -- cat <&-` hung for ever).
  if (absl::Status fds = forkserver::EnsureStandardFdsOpen(); !fds.ok()) {
    return forkserver::Fail(fds);
  }
  absl::SetProgramUsageMessage(
      "forkserverctl --socket=PATH (status [--json] | run [--cwd=DIR] "
      "[--profile=FILE [--stats [--json]]] -- PROGRAM ARGS "
      "| bench [--n=N] -- PROGRAM ARGS)");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  const std::string socket = absl::GetFlag(FLAGS_socket);
  if (socket.empty() || positional.size() < 2) {
    std::fprintf(stderr, "%s\n", absl::ProgramUsageMessage().data());
    return 2;
  }
  const std::string command = positional[1];
  std::vector<std::string> program(positional.begin() + 2, positional.end());
  if (command == "status") return forkserver::Status(socket);
  if ((command == "run" || command == "bench") && !program.empty()) {
    return command == "run" ? forkserver::Run(socket, std::move(program))
                            : forkserver::Bench(socket, std::move(program));
  }
  std::fprintf(stderr, "%s\n", absl::ProgramUsageMessage().data());
  return 2;
}
