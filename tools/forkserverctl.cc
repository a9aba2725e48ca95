// forkserverctl: talks to a fork server (forkserverd) at --socket.
//
//   forkserverctl --socket=PATH status
//       The server's pid, uptime, children, spawns, connections, open fds,
//       rejected connections and why the last one was.
//   forkserverctl --socket=PATH run [--cwd=DIR] -- PROGRAM [ARGS...]
//       Runs PROGRAM through the server with our stdin/stdout/stderr and
//       environment; exits with its exit code (128+N when killed by N).
//   forkserverctl --socket=PATH bench [--n=1000] -- PROGRAM [ARGS...]
//       Runs PROGRAM N times through the server, then N times with a local
//       fork+exec and a local posix_spawn, in the same run; prints p50/p99
//       of each. --client_mib=M makes this process big first.

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "lib/fork_server_client.h"
#include "lib/remote_command.h"
#include "lib/seqpacket.h"
#include "proto/wire.pb.h"
#include "tools/latency_stats.h"

ABSL_FLAG(std::string, socket, "", "the fork server's socket (required)");
ABSL_FLAG(std::string, cwd, "", "run: working directory of the program");
ABSL_FLAG(int, n, 1000, "bench: runs per variant");
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

int Status(const std::string& socket) {
  absl::StatusOr<internal::ServerConnection> connection =
      internal::ConnectToSocket(socket);
  if (!connection.ok()) return Fail(connection.status());
  wire::ClientMessage request;
  request.mutable_status();
  absl::StatusOr<internal::ServerReply> reply = connection->Request(request);
  if (!reply.ok()) return Fail(reply.status());
  const wire::StatusReply& s = reply->message.status();
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
  return 0;
}

int Run(const std::string& socket, std::vector<std::string> argv) {
  CommandSpec spec;
  spec.argv = std::move(argv);
  spec.cwd = absl::GetFlag(FLAGS_cwd);
  absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket, spec);
  if (!command.ok()) return Fail(command.status());
  absl::StatusOr<int> exitcode = command->Wait();
  if (!exitcode.ok()) return Fail(exitcode.status());
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

int Bench(const std::string& socket, std::vector<std::string> argv) {
  const int n = absl::GetFlag(FLAGS_n);
  absl::StatusOr<std::string> program = ResolveProgram(argv[0]);
  if (!program.ok()) return Fail(program.status());
  std::vector<char> ballast(static_cast<size_t>(absl::GetFlag(FLAGS_client_mib)) << 20);
  for (size_t i = 0; i < ballast.size(); i += 4096) ballast[i] = 1;
  CommandSpec spec;
  spec.argv = argv;
  std::vector<absl::Duration> remote, forked, local;
  for (int i = 0; i < n; ++i) {
    const absl::Time start = absl::Now();
    absl::StatusOr<RemoteCommand> command = RemoteCommand::Start(socket, spec);
    if (!command.ok()) return Fail(command.status());
    absl::StatusOr<int> exitcode = command->Wait();
    if (!exitcode.ok()) return Fail(exitcode.status());
    remote.push_back(absl::Now() - start);
  }
  std::vector<char*> cargv;
  for (std::string& arg : argv) cargv.push_back(arg.data());
  cargv.push_back(nullptr);
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<absl::Duration> took = LocalForkExec(*program, cargv);
    if (!took.ok()) return Fail(took.status());
    forked.push_back(*took);
  }
  for (int i = 0; i < n; ++i) {
    absl::StatusOr<absl::Duration> took = LocalSpawn(*program, cargv);
    if (!took.ok()) return Fail(took.status());
    local.push_back(*took);
  }
  std::printf("%-28s %10s %10s\n",
              absl::StrCat("run + wait (n=", n, ")").c_str(), "p50", "p99");
  std::printf("%-28s %10s %10s\n", "through forkserverd",
              FormatLatency(Quantile(remote, 0.5)).c_str(),
              FormatLatency(Quantile(remote, 0.99)).c_str());
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
  absl::SetProgramUsageMessage(
      "forkserverctl --socket=PATH (status | run [--cwd=DIR] -- PROGRAM ARGS "
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
