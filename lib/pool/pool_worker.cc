// A pool worker's main loop. Runs in a worker process (single-threaded
// unless a task starts threads), so ordinary C++ is fine here.

#include "lib/pool/pool_worker.h"

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
#include <optional>
#include <string>
#include <typeinfo>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/arena.h"
#include "lib/base/wait_readable.h"
#include "lib/registry/entry_runner.h"
#include "lib/ipc/framed_channel.h"
#include "lib/pool/flat_codec.h"
#include "lib/pool/pool_errors.h"
#include "lib/registry/registry.h"
#include "lib/pool/task.h"
#include "proto/pool.pb.h"

namespace forkserver {
namespace {

// How long an idle worker polls its channel before it blocks. The next task
// of a caller waiting on each result (apply one at a time) comes back within
// a few tens of µs; catching it spinning saves the sleeping worker's wake-up
// on every round trip. Bounded, so an idle worker costs no CPU.
constexpr absl::Duration kIdleSpin = absl::Microseconds(60);

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

  // Queues a message; false (after queueing a smaller error message in
  // its place where there is one) when it is too big for a frame.
  bool Send(const wire::ToParent& message);
  // Sends the part gathered so far (part_*, and the errors in `done`) as
  // `done` (more = true unless it is the task's last part) and empties it
  // for the next part.
  void SendPart(wire::ToParent& done, bool more);
  void Flush();
  // The next message from the pool; exits 0 when the channel closes.
  Pending Receive();
  // In synack mode: waits for the pool's answer to `dispatch`, keeping
  // other messages for later.
  bool AwaitSynAck(int64_t dispatch);
  void RunTask(const wire::PoolTask& task);
  void RunItems(const wire::PoolTask& task);
  // Runs item `index` of `task` on `arg`: true with its value appended to
  // `out`, or false with its error in `error` (and `out` as it was).
  bool RunOne(TaskInvoker invoker, const wire::PoolTask& task, int index,
              absl::string_view arg, std::string& out,
              wire::ItemError& error);
  // Recycling, when a limit says so; returns the reason or "".
  std::string RecycleReason();
  [[noreturn]] void Exit(int code, const std::string& reason);

  wire::WorkerConfig config_;
  FrameReader reader_;
  FrameWriter writer_;
  std::deque<Pending> pending_;
  int64_t completed_ = 0;
  // The part of a task's results not sent yet: their values back to back
  // (a failed item's is empty), where each ends, and whether every value
  // so far succeeded with the same size (the part then goes as one block).
  // Kept across tasks so their buffers are reused.
  std::string part_values_;
  std::vector<size_t> part_ends_;
  bool part_uniform_ = true;
};

bool Worker::Send(const wire::ToParent& message) {
  return writer_.Append(message.SerializeAsString()).ok();
}

void Worker::SendPart(wire::ToParent& done, bool more) {
  wire::TaskDone& items = *done.mutable_done();
  const size_t count = part_ends_.size();
  items.set_more(more);
  if (part_uniform_ && items.errors_size() == 0 && count > 0) {
    wire::PackedItems& packed = *items.mutable_packed_values();
    packed.set_item_size(static_cast<uint32_t>(part_ends_[0]));
    packed.set_count(static_cast<uint32_t>(count));
    packed.set_data(std::move(part_values_));
  } else {
    size_t start = 0;
    for (size_t end : part_ends_) {
      items.add_values(part_values_.data() + start, end - start);
      start = end;
    }
  }
  if (!Send(done)) {
    // Cannot happen within the budgets above, but if it did the items must
    // still end: each fails, in a message that certainly fits.
    wire::ToParent failed;
    wire::TaskDone& errors = *failed.mutable_done();
    errors.set_dispatch(items.dispatch());
    errors.set_first(items.first());
    errors.set_more(more);
    for (size_t i = 0; i < count; ++i) {
      errors.add_values();
      wire::ItemError& item = *errors.add_errors();
      item.set_index(items.first() + static_cast<int>(i));
      item.mutable_error()->set_code(
          static_cast<int>(absl::StatusCode::kResourceExhausted));
      item.mutable_error()->set_type("absl::Status");
      item.mutable_error()->set_message(
          "the task's results do not fit in the pool channel's frame");
    }
    (void)Send(failed);
  }
  items.set_first(items.first() + static_cast<int>(count));
  items.clear_values();
  items.clear_errors();
  items.clear_packed_values();
  part_values_.clear();
  part_ends_.clear();
  part_uniform_ = true;
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
    SpinUntilReadable(kPoolChannelFd, kIdleSpin);
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

bool Worker::RunOne(TaskInvoker invoker, const wire::PoolTask& task,
                    int index, absl::string_view arg, std::string& out,
                    wire::ItemError& item) {
  auto fail = [&](absl::StatusCode code, std::string type,
                  std::string message) {
    item.set_index(index);
    wire::TaskError& error = *item.mutable_error();
    error.set_code(static_cast<int>(code));
    error.set_type(std::move(type));
    error.set_message(std::move(message));
    error.set_context(absl::StrCat("task ", task.task(), ", job ", task.job(),
                                   ", worker pid ", ::getpid(), " (index ",
                                   config_.index(), ")"));
    return false;
  };
  if (invoker == nullptr) {
    return fail(absl::StatusCode::kNotFound, "absl::Status",
                absl::StrCat("no task named '", task.task(),
                             "' is registered (FORKSERVER_REGISTER_TASK)"));
  }
  TaskContext context(config_.index(), task.job(), &soft_limit_flag);
  const size_t before = out.size();
  try {
    absl::Status result = invoker(arg, context, out);
    if (result.ok()) {
      const size_t size = out.size() - before;
      if (size <= kMaxPoolItemBytes) return true;
      out.resize(before);
      return fail(absl::StatusCode::kResourceExhausted, "absl::Status",
                  absl::StrCat("result of ", size,
                               " bytes exceeds the pool channel's cap of ",
                               kMaxPoolItemBytes, " bytes per item"));
    }
    out.resize(before);
    if (GetPoolError(result) == PoolError::kSoftTimeLimitExceeded) {
      return fail(result.code(), "SoftTimeLimitExceeded",
                  std::string(result.message()));
    }
    return fail(result.code(), "absl::Status", std::string(result.message()));
  } catch (const std::exception& e) {
    out.resize(before);
    return fail(absl::StatusCode::kUnknown, Demangle(typeid(e).name()),
                e.what());
  } catch (...) {
    out.resize(before);
    return fail(absl::StatusCode::kUnknown, "unknown exception",
                "a non-std exception was thrown");
  }
}

void Worker::RunTask(const wire::PoolTask& task) {
  // Armed before the acknowledgement leaves: the soft limit counts from
  // the pool's receipt of it, and a limit of zero fires at once. A SIGUSR1
  // for this task arriving before running_dispatch matched it would be
  // dropped as an earlier task's. Clear the flag first, then name the task.
  soft_limit_flag = 0;
  running_dispatch = static_cast<sig_atomic_t>(task.dispatch() & 0x7fffffff);
  wire::ToParent accepted;
  accepted.mutable_accepted()->set_dispatch(task.dispatch());
  accepted.mutable_accepted()->set_accepted_unix_usec(
      absl::ToUnixMicros(absl::Now()));
  Send(accepted);
  // The acknowledgement leaves before the task runs (with the previous
  // task's result, in one write): time limits count from here.
  Flush();
  if (config_.synack() && !AwaitSynAck(task.dispatch())) {
    running_dispatch = 0;
    return;
  }

  RunItems(task);
  running_dispatch = 0;
  ++completed_;
}

// Runs every item of `task` and sends their outcomes: in one TaskDone, or
// in parts of about kPoolMessageBudgetBytes when the results are large.
// Values gather in part_values_ with no per-item message field; a part
// whose items all succeeded with values of one size (any task returning an
// arithmetic value, say) goes as one block.
void Worker::RunItems(const wire::PoolTask& task) {
  const bool packed = task.has_packed_args();
  if (packed) {
    const wire::PackedItems& args = task.packed_args();
    if (absl::Status valid = internal::CheckBlock(
            args.data().size(), args.item_size(), args.count());
        !valid.ok() || task.args_size() != 0 ||
        args.count() > static_cast<uint32_t>(INT32_MAX)) {
      Exit(1, absl::StrCat("malformed task from the pool: ", valid.ToString()));
    }
  }
  const int count = packed ? static_cast<int>(task.packed_args().count())
                           : task.args_size();
  TaskInvoker invoker = FindTask(task.task());
  google::protobuf::Arena arena;
  auto* done = google::protobuf::Arena::CreateMessage<wire::ToParent>(&arena);
  wire::TaskDone& items = *done->mutable_done();
  items.set_dispatch(task.dispatch());
  part_values_.clear();
  part_ends_.clear();
  part_uniform_ = true;
  wire::ItemError error;
  for (int i = 0; i < count; ++i) {
    const absl::string_view arg =
        packed ? absl::string_view(task.packed_args().data())
                     .substr(static_cast<size_t>(i) * task.packed_args().item_size(),
                             task.packed_args().item_size())
               : absl::string_view(task.args(i));
    const size_t before = part_values_.size();
    const bool ok = RunOne(invoker, task, i, arg, part_values_, error);
    const size_t size = part_values_.size() - before;
    if (!part_ends_.empty() && part_values_.size() > kMaxPoolItemBytes) {
      // This result makes the part too big for a frame: the part before it
      // goes first, and it starts the next.
      std::string last = part_values_.substr(before);
      part_values_.resize(before);
      SendPart(*done, /*more=*/true);
      part_values_ = std::move(last);
    }
    if (ok) {
      if (!part_ends_.empty() && size != part_ends_[0]) part_uniform_ = false;
    } else {
      part_uniform_ = false;
      *items.add_errors() = error;
      error.Clear();
    }
    part_ends_.push_back(part_values_.size());
    if (part_values_.size() > kPoolMessageBudgetBytes && i + 1 < count) {
      SendPart(*done, /*more=*/true);
      Flush();  // Don't hold a part in memory while the next one runs.
    }
  }
  SendPart(*done, /*more=*/false);
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
    // A throwing hook must not change the exit code (155 became 1).
    try {
      hook(::getpid(), code);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "forkserver: pool worker %d: exit hook '%s' threw %s: %s\n",
                   ::getpid(), config_.exit_hook().c_str(),
                   Demangle(typeid(e).name()).c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "forkserver: pool worker %d: exit hook '%s' threw\n",
                   ::getpid(), config_.exit_hook().c_str());
    }
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
