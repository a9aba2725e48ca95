// The worker's remote-control commands (control.h): ping, revoke,
// shutdown, stats.

#include <csignal>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/celery/log.h"
#include "lib/celery/worker.h"

namespace forkserver {
namespace celery {

using nlohmann::json;

namespace {

// Celery's LimitedSet of revoked ids: at most this many, for this long.
constexpr size_t kMaxRevoked = 50000;
constexpr absl::Duration kRevokeExpires = absl::Hours(3);

// "SIGTERM", "TERM", "9" -> the signal number; SIGTERM if unreadable.
int SignalNumber(const json& value) {
  if (value.is_number_integer()) return value.get<int>();
  if (!value.is_string()) return SIGTERM;
  std::string name = value.get<std::string>();
  if (name.rfind("SIG", 0) != 0) name = "SIG" + name;
  for (int sig = 1; sig < NSIG; ++sig) {
    const char* abbrev = sigabbrev_np(sig);
    if (abbrev != nullptr && name == absl::StrCat("SIG", abbrev)) return sig;
  }
  return SIGTERM;
}

}  // namespace

std::map<std::string, ControlHandler> Worker::ControlHandlers() {
  return {
      {"ping", [](const json&) { return json{{"ok", "pong"}}; }},
      {"revoke", [this](const json& args) { return Revoke(args); }},
      {"shutdown",
       [this](const json&) {
         RequestShutdown(/*cold=*/false);
         return json{{"ok", "shutdown requested"}};
       }},
      {"stats", [this](const json&) { return Stats(); }},
  };
}

json Worker::Revoke(const json& arguments) {
  std::vector<std::string> ids;
  const json task_id = arguments.contains("task_id") ? arguments["task_id"] : json();
  if (task_id.is_string()) ids.push_back(task_id.get<std::string>());
  if (task_id.is_array()) {
    for (const json& id : task_id) {
      if (id.is_string()) ids.push_back(id.get<std::string>());
    }
  }
  const bool terminate = arguments.contains("terminate") &&
                         arguments["terminate"].is_boolean() &&
                         arguments["terminate"].get<bool>();
  const int signal = SignalNumber(arguments.contains("signal") ? arguments["signal"] : json());
  std::vector<pid_t> to_terminate;
  std::vector<AsyncResult> to_cancel;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = absl::Now();
    if (revoked_.size() >= kMaxRevoked) {
      for (auto it = revoked_.begin(); it != revoked_.end();) {
        if (now - it->second > kRevokeExpires) revoked_.erase(it++);
        else ++it;
      }
    }
    for (const std::string& id : ids) revoked_[id] = now;
    for (auto& [tag, held] : held_) {
      if (std::find(ids.begin(), ids.end(), held.message.id) == ids.end()) continue;
      if (held.state == State::kEta) {
        etas_.erase({*held.message.eta, tag});
        Finish(held, TaskOutcome::Revoked("revoked"));
      } else if (held.state == State::kQueued && held.job) {
        to_cancel.push_back(*held.job);  // OnError sees it revoked
      } else if (held.state == State::kRunning && terminate) {
        terminating_.insert(tag);
        to_terminate.push_back(held.pid);
      }
    }
  }
  for (const AsyncResult& job : to_cancel) (void)job.Cancel();
  for (pid_t pid : to_terminate) {
    if (absl::Status s = pool_->TerminateJob(pid, signal); !s.ok()) {
      Log(LogLevel::kWarning, "revoke: terminating pid ", pid, ": ", s.message());
    }
  }
  Log(LogLevel::kInfo, "Tasks flagged as revoked: ", absl::StrJoin(ids, ", "));
  return {{"ok", absl::StrCat("tasks ", absl::StrJoin(ids, ", "),
                              " flagged as revoked")}};
}

json Worker::Stats() const {
  json pids = json::array();
  for (const WorkerInfo& w : pool_->Workers()) pids.push_back(w.pid);
  absl::MutexLock lock(&mu_);
  return {{"pid", ::getpid()},
          {"total", {{"succeeded", succeeded_}, {"failed", failed_}}},
          {"pool",
           {{"implementation", "forkserver.Pool"},
            {"max-concurrency", pool_->processes()},
            {"processes", pids}}},
          {"prefetch_count", prefetch_limit_},
          {"held", held_.size()}};
}

}  // namespace celery
}  // namespace forkserver
