#include "lib/process_launch.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "forkserver/child_setup.h"
#include "forkserver/spawner.h"
#include "lib/entry_runner.h"
#include "lib/fork_server_client.h"
#include "lib/init.h"
#include "lib/preload.h"
#include "lib/registry.h"
#include "lib/seqpacket.h"
#include "lib/spawned_worker.h"
#include "lib/status_macros.h"
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
  std::strncpy(plan.name, request.name.c_str(), sizeof(plan.name) - 1);
  plan.fd_count = static_cast<int>(request.fds.size());
  for (int i = 0; i < plan.fd_count; ++i) {
    plan.source_fds[i] = request.fds[i].first;
    plan.target_fds[i] = request.fds[i].second;
  }
}

// Waits for a local child's setup; on failure reaps it and returns why.
absl::StatusOr<std::unique_ptr<ChildHandle>> FinishLocalLaunch(
    ForkedChild child) {
  absl::Status setup =
      AwaitChildSetup(child.report.get(), absl::Now() + kLocalSetupTimeout);
  if (!setup.ok()) {
    if (absl::IsDeadlineExceeded(setup)) ::kill(child.pid, SIGKILL);
    while (::waitpid(child.pid, nullptr, 0) < 0 && errno == EINTR) {
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
  ASSIGN_OR_RETURN(ForkedChild child, ForkChild(plan));
  if (child.pid == 0) {
    // In the child. If the application had other threads, this is where
    // the "fork" start method's documented risk lies.
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
  ASSIGN_OR_RETURN(ForkedChild child, ForkChild(plan));
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
  std::vector<int> fds;
  for (const auto& [parent_fd, child_fd] : request.fds) {
    spawn.add_child_fds(child_fd);
    fds.push_back(parent_fd);
  }
  UniqueFd arg_memfd;
  if (request.arg.size() > kMaxInlineArgBytes) {
    ASSIGN_OR_RETURN(arg_memfd, SealedMemfd("forkserver-arg", request.arg));
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
  const pid_t server_pid = connection.server_pid();
  return MakeServerChild(reply->message.spawned().pid(),
                         std::move(reply->fds[0]), connection.TakeSocket(),
                         server_pid);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildHandle>> LaunchChild(
    StartMethod method, const LaunchRequest& request) {
  RETURN_IF_ERROR(CheckStartMethodAllowed(method));
  RETURN_IF_ERROR(ValidateRequest(request));
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
