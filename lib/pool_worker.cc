// A pool worker's main loop. Runs in a worker process (single-threaded
// unless a task starts threads), so ordinary C++ is fine here.

#include "lib/pool_worker.h"

#include <cxxabi.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <typeinfo>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/arena.h"
#include "lib/entry_runner.h"
#include "lib/framed_channel.h"
#include "lib/pool_errors.h"
#include "lib/registry.h"
#include "lib/task.h"
#include "proto/pool.pb.h"

namespace forkserver {
namespace {

// Set by the SIGUSR1 handler: the running task's soft limit passed.
volatile sig_atomic_t soft_limit_flag = 0;
// Low 31 bits of the running dispatch: a SIGUSR1 queued (SI_QUEUE) for an
// earlier task must not mark this one.
volatile sig_atomic_t running_dispatch = 0;

void OnSoftLimit(int, siginfo_t* info, void*) {
  if (info == nullptr || info->si_code != SI_QUEUE ||
      info->si_value.sival_int == running_dispatch) {
    soft_limit_flag = 1;
  }
}

void InstallSignalHandlers() {
  struct sigaction action = {};
  action.sa_sigaction = OnSoftLimit;
  action.sa_flags = SA_SIGINFO;  // No SA_RESTART: blocking calls get EINTR.
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGUSR1, &action, nullptr);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGPIPE, SIG_IGN);
}

std::string Demangle(const char* name) {
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> demangled(
      abi::__cxa_demangle(name, nullptr, nullptr, &status), &std::free);
  return status == 0 && demangled ? demangled.get() : name;
}

class Worker {
 public:
  explicit Worker(wire::WorkerConfig config) : config_(std::move(config)) {}

  [[noreturn]] void Run();

 private:
  // A message received and not yet handled, parsed into its own arena (a
  // chunk of thousands of arguments is then one allocation).
  struct Pending {
    std::unique_ptr<google::protobuf::Arena> arena;
    wire::ToWorker* message;
  };

  void Send(const wire::ToParent& message);
  void Flush();
  // The next message from the pool; exits 0 when the channel closes.
  Pending Receive();
  // In synack mode: waits for the pool's answer to `dispatch`, keeping
  // other messages for later.
  bool AwaitSynAck(int64_t dispatch);
  void RunTask(const wire::PoolTask& task);
  // Runs item `index` of `task`, adding its value or error to `done`.
  void RunOne(TaskInvoker invoker, const wire::PoolTask& task, int index,
              wire::TaskDone& done);
  // Recycling, when a limit says so; returns the reason or "".
  std::string RecycleReason();
  [[noreturn]] void Exit(int code, const std::string& reason);

  wire::WorkerConfig config_;
  FrameReader reader_;
  FrameWriter writer_;
  std::deque<Pending> pending_;
  int64_t completed_ = 0;
};

void Worker::Send(const wire::ToParent& message) {
  // A result too big for a frame was already turned into an error.
  (void)writer_.Append(message.SerializeAsString());
}

void Worker::Flush() {
  if (!writer_.Flush(kPoolChannelFd).ok()) {
    // The pool is gone: nobody to work for.
    FlushStandardStreams();
    ::_exit(0);
  }
}

Worker::Pending Worker::Receive() {
  while (pending_.empty()) {
    while (true) {
      absl::StatusOr<std::optional<absl::string_view>> frame = reader_.Next();
      if (!frame.ok()) Exit(1, frame.status().ToString());
      if (!frame->has_value()) break;
      Pending next;
      next.arena = std::make_unique<google::protobuf::Arena>();
      next.message =
          google::protobuf::Arena::CreateMessage<wire::ToWorker>(next.arena.get());
      if (!next.message->ParseFromArray((*frame)->data(),
                                        static_cast<int>((*frame)->size()))) {
        Exit(1, "undecodable message from the pool");
      }
      pending_.push_back(std::move(next));
    }
    if (!pending_.empty()) break;
    Flush();  // About to block: what we have to say goes out first.
    absl::StatusOr<size_t> read = reader_.Fill(kPoolChannelFd);
    if (!read.ok() || *read == 0) Exit(0, "");  // The pool closed.
  }
  Pending next = std::move(pending_.front());
  pending_.pop_front();
  return next;
}

bool Worker::AwaitSynAck(int64_t dispatch) {
  std::deque<Pending> held;
  while (true) {
    Pending next = Receive();
    if (next.message->has_synack() &&
        next.message->synack().dispatch() == dispatch) {
      for (auto it = held.rbegin(); it != held.rend(); ++it) {
        pending_.push_front(std::move(*it));
      }
      return next.message->synack().accept();
    }
    held.push_back(std::move(next));
  }
}

void Worker::RunOne(TaskInvoker invoker, const wire::PoolTask& task,
                    int index, wire::TaskDone& done) {
  // values[i] belongs to item i: a failed item leaves an empty value.
  std::string* value = done.add_values();
  auto fail = [&](absl::StatusCode code, std::string type,
                  std::string message) {
    wire::ItemError& item = *done.add_errors();
    item.set_index(index);
    wire::TaskError& error = *item.mutable_error();
    error.set_code(static_cast<int>(code));
    error.set_type(std::move(type));
    error.set_message(std::move(message));
    error.set_context(absl::StrCat("task ", task.task(), ", job ", task.job(),
                                   ", worker pid ", ::getpid(), " (index ",
                                   config_.index(), ")"));
  };
  if (invoker == nullptr) {
    fail(absl::StatusCode::kNotFound, "absl::Status",
         absl::StrCat("no task named '", task.task(),
                      "' is registered (FORKSERVER_REGISTER_TASK)"));
    return;
  }
  TaskContext context(config_.index(), task.job(), &soft_limit_flag);
  try {
    absl::StatusOr<std::string> result = invoker(task.args(index), context);
    if (result.ok()) {
      if (result->size() > kMaxFrameBytes - 1024) {
        fail(absl::StatusCode::kInvalidArgument, "absl::Status",
             absl::StrCat("result of ", result->size(),
                          " bytes exceeds the channel's cap of ",
                          kMaxFrameBytes, " bytes"));
      } else {
        *value = *std::move(result);
      }
    } else if (GetPoolError(result.status()) ==
               PoolError::kSoftTimeLimitExceeded) {
      fail(result.status().code(), "SoftTimeLimitExceeded",
           std::string(result.status().message()));
    } else {
      fail(result.status().code(), "absl::Status",
           std::string(result.status().message()));
    }
  } catch (const std::exception& e) {
    fail(absl::StatusCode::kUnknown, Demangle(typeid(e).name()), e.what());
  } catch (...) {
    fail(absl::StatusCode::kUnknown, "unknown exception",
         "a non-std exception was thrown");
  }
}

void Worker::RunTask(const wire::PoolTask& task) {
  wire::ToParent accepted;
  accepted.mutable_accepted()->set_dispatch(task.dispatch());
  accepted.mutable_accepted()->set_accepted_unix_usec(
      absl::ToUnixMicros(absl::Now()));
  Send(accepted);
  // The acknowledgement leaves before the task runs (with the previous
  // task's result, in one write): time limits count from here.
  Flush();
  if (config_.synack() && !AwaitSynAck(task.dispatch())) return;

  running_dispatch = static_cast<sig_atomic_t>(task.dispatch() & 0x7fffffff);
  soft_limit_flag = 0;
  TaskInvoker invoker = FindTask(task.task());
  // One arena for the whole result message: a chunk of thousands of items
  // would otherwise cost an allocation per value.
  google::protobuf::Arena arena;
  auto* done = google::protobuf::Arena::CreateMessage<wire::ToParent>(&arena);
  wire::TaskDone& items = *done->mutable_done();
  items.set_dispatch(task.dispatch());
  items.mutable_values()->Reserve(task.args_size());
  for (int i = 0; i < task.args_size(); ++i) RunOne(invoker, task, i, items);
  running_dispatch = 0;
  Send(*done);
  ++completed_;
}

std::string Worker::RecycleReason() {
  if (config_.max_tasks() > 0 && completed_ >= config_.max_tasks()) {
    return absl::StrCat("completed ", completed_, " tasks");
  }
  if (config_.max_memory_kib() > 0) {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    if (usage.ru_maxrss > config_.max_memory_kib()) {
      // No warning printed: recycling is routine (the pool reports the
      // reason in on_process_down).
      return absl::StrCat("exceeded memory limit (", usage.ru_maxrss,
                          "KiB / ", config_.max_memory_kib(), "KiB)");
    }
  }
  return "";
}

void Worker::Exit(int code, const std::string& reason) {
  if (code != 0) {
    wire::ToParent exiting;
    exiting.mutable_exiting()->set_exit_code(code);
    exiting.mutable_exiting()->set_reason(reason);
    Send(exiting);
  }
  (void)writer_.Flush(kPoolChannelFd);
  if (ExitHookFunction hook = FindExitHook(config_.exit_hook())) {
    hook(::getpid(), code);
  }
  FlushStandardStreams();
  ::_exit(code);
}

void Worker::Run() {
  InstallSignalHandlers();
  // Programs a task execs must not inherit the channel.
  ::fcntl(kPoolChannelFd, F_SETFD, FD_CLOEXEC);
  if (!config_.initializer().empty()) {
    InitializerFunction initializer = FindInitializer(config_.initializer());
    absl::Status initialized =
        initializer == nullptr
            ? absl::NotFoundError(absl::StrCat(
                  "no initializer named '", config_.initializer(), "'"))
            : initializer(config_.initializer_arg());
    if (!initialized.ok()) {
      std::string reason = absl::StrCat("initializer '", config_.initializer(),
                                        "' failed: ", initialized.ToString());
      std::fprintf(stderr, "forkserver pool worker %d: %s\n", ::getpid(),
                   reason.c_str());
      Exit(1, reason);
    }
  }
  wire::ToParent up;
  up.mutable_up()->set_pid(::getpid());
  Send(up);
  Flush();
  while (true) {
    Pending next = Receive();
    if (next.message->has_shutdown()) Exit(0, "");
    if (!next.message->has_task()) continue;  // A stale synack: ignore.
    RunTask(next.message->task());
    if (std::string reason = RecycleReason(); !reason.empty()) {
      Exit(kRecycleExitCode, reason);
    }
  }
}

int PoolWorkerMain(absl::string_view config_bytes) {
  wire::WorkerConfig config;
  if (!config.ParseFromArray(config_bytes.data(),
                             static_cast<int>(config_bytes.size()))) {
    std::fprintf(stderr, "forkserver pool worker: undecodable config\n");
    return 1;
  }
  Worker(std::move(config)).Run();
}

const internal::Registrar<internal::RegistryKind::kEntry> registrar(
    kPoolWorkerEntry, &PoolWorkerMain);

}  // namespace

namespace internal {
const char* PoolWorkerEntryName() { return kPoolWorkerEntry; }
}  // namespace internal

}  // namespace forkserver
