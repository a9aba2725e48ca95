#include "lib/process/process_launch.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_cat.h"
#include "lib/base/sealed_memfd.h"
#include "forkserver/child/child_setup.h"
#include "forkserver/child/spawner.h"
#include "lib/registry/entry_runner.h"
#include "lib/client/fork_server_client.h"
#include "lib/registry/program.h"
#include "lib/registry/preload.h"
#include "lib/registry/registry.h"
#include "lib/ipc/seqpacket.h"
#include "lib/process/spawned_worker.h"
#include "lib/base/status_macros.h"
#include "proto/launch.pb.h"
#include "proto/wire.pb.h"

extern char** environ;

namespace forkserver {
namespace {

// Arguments up to this size travel inside the spawn request; larger ones
// in a sealed memfd (the request packet is capped at kMaxPacketBytes).
constexpr size_t kMaxInlineArgBytes = 32 * 1024;
// How long a local child may take to finish setup (execve included).
constexpr absl::Duration kLocalSetupTimeout = absl::Seconds(30);

absl::Status ValidateRequest(const LaunchRequest& request) {
  if (FindEntry(request.entry) == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no entry point named '", request.entry,
        "' is registered (FORKSERVER_ENTRY)"));
  }
  if (request.fds.size() > static_cast<size_t>(kMaxPacketFds) - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.fds.size(), " descriptors for the child; at most ",
        kMaxPacketFds - 1, " can be passed"));
  }
  std::vector<int> targets;
  for (const auto& [parent_fd, child_fd] : request.fds) {
    if (::fcntl(parent_fd, F_GETFD) < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "descriptor ", parent_fd, " to pass as ", child_fd,
          " is not open"));
    }
    if (child_fd < 0 || child_fd >= kMaxChildFdNumber) {
      return absl::InvalidArgumentError(absl::StrCat(
          "child descriptor number ", child_fd, " is outside [0, ",
          kMaxChildFdNumber, ")"));
    }
    targets.push_back(child_fd);
  }
  std::sort(targets.begin(), targets.end());
  if (std::adjacent_find(targets.begin(), targets.end()) != targets.end()) {
    return absl::InvalidArgumentError(
        "two descriptors for the same child descriptor number");
  }
  return absl::OkStatus();
}

void FillCommonPlan(const LaunchRequest& request, ChildSetupPlan& plan) {
  plan.new_session = true;
  if (request.daemon) {
    // A daemon dies with its owner, even a SIGKILLed one (no atexit hook
    // runs then). The child checks getppid() against this after prctl(),
    // so an owner that died in between is caught too (parent_death step).
    plan.parent_death_signal = SIGKILL;
    plan.expected_parent = ::getpid();
  }
  std::strncpy(plan.name, request.name.c_str(), sizeof(plan.name) - 1);
  plan.fd_count = static_cast<int>(request.fds.size());
  for (int i = 0; i < plan.fd_count; ++i) {
    plan.source_fds[i] = request.fds[i].first;
    plan.target_fds[i] = request.fds[i].second;
  }
}

// Local children send no SIGCHLD (exit_signal 0): an application that
// reaps with waitpid(-1) or ignores SIGCHLD cannot take their status; we
// join them through their pidfds (waitid(P_PIDFD, ... __WALL)).
ForkOptions LocalForkOptions() {
  ForkOptions options;
  options.exit_signal = 0;
  return options;
}

// Whether this process has a thread besides the caller: the number of
// threads is field 20 of /proc/self/stat, after the parenthesised name
// (which may itself hold spaces and parentheses). Unknown counts as yes:
// the safe answer.
bool HasOtherThreads() {
  std::ifstream in("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return true;
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(stat).substr(close + 2), ' ');
  // Fields from the state (field 3) on: num_threads is field 20.
  int threads = 0;
  if (fields.size() < 18 || !absl::SimpleAtoi(fields[17], &threads)) return true;
  return threads > 1;
}

// Waits for a local child's setup; on failure reaps it and returns why.
absl::StatusOr<std::unique_ptr<ChildHandle>> FinishLocalLaunch(
    ForkedChild child) {
  absl::Status setup =
      AwaitChildSetup(child.report.get(), absl::Now() + kLocalSetupTimeout);
  if (!setup.ok()) {
    // Through the pidfd, never kill(pid): the pid is only a number.
    if (absl::IsDeadlineExceeded(setup)) {
      ::syscall(SYS_pidfd_send_signal, child.pidfd.get(), SIGKILL, nullptr, 0);
    }
    siginfo_t info{};
    while (::waitid(static_cast<idtype_t>(P_PIDFD),
                    static_cast<id_t>(child.pidfd.get()), &info,
                    WEXITED | __WALL) < 0 &&
           errno == EINTR) {
    }
    return setup;
  }
  return MakeLocalChild(child.pid, std::move(child.pidfd));
}

absl::StatusOr<std::unique_ptr<ChildHandle>> LaunchWithFork(
    const LaunchRequest& request) {
  // Workers forked from the application see preloaded state, as they
  // would from the server: the application preloads once, on first use.
  RETURN_IF_ERROR(RunPreloadsOnce());
  EntryFunction entry = FindEntry(request.entry);
  ChildSetupPlan plan;
  FillCommonPlan(request, plan);
  FlushStandardStreams();
  ForkOptions fork_options = LocalForkOptions();
  if (HasOtherThreads()) {
    // glibc's fork() keeps malloc usable in the child; the price is a
    // SIGCHLD child that a foreign waitpid(-1) may reap (its status then
    // comes back through the pidfd: ChildHandle).
    fork_options.libc_fork = true;
    fork_options.exit_signal = SIGCHLD;
  }
  ASSIGN_OR_RETURN(ForkedChild child, ForkChild(plan, fork_options));
  if (child.pid == 0) {
    // In the child. If the application had other threads, locks of its
    // own that they held stay held here: the "fork" start method's
    // documented risk.
    RunEntryAndExit(entry, request.arg, request.entry);
  }
  return FinishLocalLaunch(std::move(child));
}

// The child's environment: ours, with the two variables a spawned worker
// gets set (replacing any inherited values).
std::vector<std::string> SpawnEnvironment() {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr;
       ++entry) {
    absl::string_view text = *entry;
    if (absl::StartsWith(text, "FORKED_BY_MULTIPROCESSING=") ||
        absl::StartsWith(text, "MP_MAIN_FILE=")) {
      continue;
    }
    env.emplace_back(text);
  }
  env.push_back("FORKED_BY_MULTIPROCESSING=1");
  env.push_back(absl::StrCat("MP_MAIN_FILE=", MainExecutablePath()));
  return env;
}

std::vector<char*> PointersTo(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

absl::StatusOr<std::unique_ptr<ChildHandle>> LaunchWithSpawn(
    const LaunchRequest& request) {
  RETURN_IF_ERROR(internal::CheckInitialized("start a worker with 'spawn'"));
  wire::WorkerLaunch launch;
  launch.set_entry(request.entry);
  launch.set_arg(std::string(request.arg));
  launch.set_name(request.name);
  ASSIGN_OR_RETURN(UniqueFd launch_fd, WriteLaunchMemfd(launch));

  // The launch descriptor goes at the lowest number >= 3 the caller did
  // not ask for.
  int launch_target = 3;
  while (std::any_of(request.fds.begin(), request.fds.end(),
                     [&](const auto& fd) { return fd.second == launch_target; })) {
    ++launch_target;
  }
  const auto& main_args = MainArgs();
  std::vector<std::string> args = {
      main_args.empty() ? MainExecutablePath() : main_args[0],
      absl::StrCat(kWorkerFdFlag, launch_target), "--"};
  args.insert(args.end(), main_args.begin(), main_args.end());
  std::vector<std::string> env = SpawnEnvironment();
  std::vector<char*> argv = PointersTo(args);
  std::vector<char*> envp = PointersTo(env);

  ChildSetupPlan plan;
  FillCommonPlan(request, plan);
  plan.source_fds[plan.fd_count] = launch_fd.get();
  plan.target_fds[plan.fd_count] = launch_target;
  ++plan.fd_count;
  plan.exec_path = "/proc/self/exe";
  plan.exec_argv = argv.data();
  plan.exec_envp = envp.data();
  FlushStandardStreams();
  ASSIGN_OR_RETURN(ForkedChild child, ForkChild(plan, LocalForkOptions()));
  return FinishLocalLaunch(std::move(child));
}

absl::StatusOr<std::unique_ptr<ChildHandle>> LaunchWithForkServer(
    const LaunchRequest& request) {
  ASSIGN_OR_RETURN(internal::ServerConnection connection,
                   internal::ConnectToForkServer());
  wire::ClientMessage message;
  wire::SpawnRequest& spawn = *message.mutable_spawn();
  spawn.set_kind(wire::SPAWN_KIND_ENTRY);
  spawn.set_entry(request.entry);
  spawn.set_name(request.name);
  spawn.set_kill_on_disconnect(request.daemon);
  if (request.sandbox != nullptr) *spawn.mutable_sandbox() = *request.sandbox;
  std::vector<int> fds;
  for (const auto& [parent_fd, child_fd] : request.fds) {
    spawn.add_child_fds(child_fd);
    fds.push_back(parent_fd);
  }
  UniqueFd arg_memfd;
  if (request.arg.size() > kMaxInlineArgBytes) {
    ASSIGN_OR_RETURN(arg_memfd, MakeSealedMemfd("forkserver-arg", request.arg));
    spawn.set_arg_in_memfd(true);
    fds.push_back(arg_memfd.get());
  } else {
    spawn.set_arg(std::string(request.arg));
  }

  absl::StatusOr<internal::ServerReply> reply = connection.Request(message, fds);
  if (!reply.ok()) return reply.status();
  if (!reply->message.has_spawned() || reply->fds.size() != 1) {
    return absl::InternalError(
        "fork server's spawn reply carried no pid and pidfd");
  }
  // The child's handle reads its exit notice on this connection, then
  // releases it for the next request.
  return MakeServerChild(reply->message.spawned().pid(),
                         std::move(reply->fds[0]), std::move(connection));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildHandle>> LaunchChild(
    StartMethod method, const LaunchRequest& request) {
  RETURN_IF_ERROR(CheckStartMethodAllowed(method));
  RETURN_IF_ERROR(ValidateRequest(request));
  if (request.sandbox != nullptr && method != StartMethod::kForkServer) {
    // Said, not silently ignored: a sandbox is never weaker than asked.
    return absl::FailedPreconditionError(absl::StrCat(
        "a sandboxed worker needs the 'forkserver' start method, not '",
        StartMethodName(method),
        "': sandboxes are built from the single-threaded fork server's "
        "template zygotes ('fork' would fork this possibly threaded process "
        "into namespaces; 'spawn' would need this binary inside the view)"));
  }
  switch (method) {
    case StartMethod::kFork:
      return LaunchWithFork(request);
    case StartMethod::kSpawn:
      return LaunchWithSpawn(request);
    case StartMethod::kForkServer:
      return LaunchWithForkServer(request);
  }
  return absl::InvalidArgumentError("unknown start method");
}

}  // namespace forkserver
