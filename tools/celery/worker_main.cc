#include "tools/celery/worker_main.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "lib/celery/log.h"
#include "lib/celery/worker.h"

ABSL_FLAG(std::string, broker, "redis://localhost:6379/0",
          "broker URL: redis://host:port/db or redis+socket:///path");
ABSL_FLAG(std::string, result_backend, "",
          "result backend URL (same forms); default: the broker");
ABSL_FLAG(std::string, queues, "celery", "comma-separated queues to consume");
ABSL_FLAG(int, concurrency, 0, "pool processes; 0: the number of CPUs");
ABSL_FLAG(std::string, hostname, "celery@%h",
          "node name; %h is the host name");
ABSL_FLAG(std::string, loglevel, "warning", "debug, info, warning, error, critical");
ABSL_FLAG(int, prefetch_multiplier, 4,
          "messages held per process (worker_prefetch_multiplier); 0: no limit");
ABSL_FLAG(bool, acks_late, false, "acknowledge after the task (task_acks_late)");
ABSL_FLAG(bool, reject_on_worker_lost, false,
          "with acks_late, requeue a task whose pool process died");
ABSL_FLAG(double, time_limit, 0, "default hard time limit, seconds; 0: none");
ABSL_FLAG(double, soft_time_limit, 0, "default soft time limit, seconds; 0: none");
ABSL_FLAG(int, max_tasks_per_child, 0, "recycle a process after N tasks; 0: never");
ABSL_FLAG(int64_t, max_memory_per_child, 0,
          "recycle a process whose RSS exceeded N KiB after a task; 0: never");
ABSL_FLAG(double, visibility_timeout, 3600,
          "seconds before another worker restores an unacked message "
          "(broker_transport_options visibility_timeout)");
ABSL_FLAG(double, result_expires, 86400, "result expiry, seconds; 0: never");
ABSL_FLAG(bool, without_control, false, "do not answer remote control");

namespace forkserver {
namespace celery {
namespace {

std::string Hostname(const std::string& pattern) {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  return absl::StrReplaceAll(pattern, {{"%h", host}});
}

absl::StatusOr<WorkerOptions> OptionsFromFlags() {
  WorkerOptions o;
  absl::StatusOr<RedisUrl> broker = ParseRedisUrl(absl::GetFlag(FLAGS_broker));
  if (!broker.ok()) return broker.status();
  o.broker = *broker;
  const std::string backend_url = absl::GetFlag(FLAGS_result_backend);
  absl::StatusOr<RedisUrl> backend =
      backend_url.empty() ? broker : ParseRedisUrl(backend_url);
  if (!backend.ok()) return backend.status();
  o.backend = *backend;
  o.queues = absl::StrSplit(absl::GetFlag(FLAGS_queues), ',', absl::SkipEmpty());
  o.concurrency = absl::GetFlag(FLAGS_concurrency);
  o.hostname = Hostname(absl::GetFlag(FLAGS_hostname));
  o.prefetch_multiplier = absl::GetFlag(FLAGS_prefetch_multiplier);
  o.acks_late = absl::GetFlag(FLAGS_acks_late);
  o.reject_on_worker_lost = absl::GetFlag(FLAGS_reject_on_worker_lost);
  if (double s = absl::GetFlag(FLAGS_time_limit); s > 0) o.time_limit = absl::Seconds(s);
  if (double s = absl::GetFlag(FLAGS_soft_time_limit); s > 0) {
    o.soft_time_limit = absl::Seconds(s);
  }
  if (int n = absl::GetFlag(FLAGS_max_tasks_per_child); n > 0) o.max_tasks_per_child = n;
  if (int64_t kib = absl::GetFlag(FLAGS_max_memory_per_child); kib > 0) {
    o.max_memory_per_child_kib = kib;
  }
  o.visibility_timeout = absl::Seconds(absl::GetFlag(FLAGS_visibility_timeout));
  o.result_expires = absl::Seconds(absl::GetFlag(FLAGS_result_expires));
  o.enable_control = !absl::GetFlag(FLAGS_without_control);
  return o;
}

// Signals are blocked in every thread and taken here, so a handler never
// runs in the middle of a Redis call or under a lock.
void SignalLoop(sigset_t set, Worker* worker) {
  for (;;) {
    int sig = 0;
    if (::sigwait(&set, &sig) != 0) continue;
    if (sig == SIGUSR1) {
      Log(LogLevel::kWarning, worker->StatusLine());
    } else {
      worker->RequestShutdown(/*cold=*/sig == SIGQUIT);
    }
  }
}

}  // namespace

// celery's flags are spelled with dashes (--result-backend), Abseil's
// with underscores: accept both by rewriting the name part in place.
void DashesToUnderscores(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* arg = argv[i];
    if (std::strncmp(arg, "--", 2) != 0) continue;
    if (arg[2] == '\0') break;  // "--": the rest are not flags
    for (char* c = arg + 2; *c != '\0' && *c != '='; ++c) {
      if (*c == '-') *c = '_';
    }
  }
}

int CeleryWorkerMain(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "A Celery worker (message protocol v2, Redis) running tasks on a "
      "forkserver Pool.\n  celery_worker --broker=redis://localhost:6379/0 "
      "--concurrency=4 --loglevel=info");
  DashesToUnderscores(argc, argv);
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<LogLevel> level = ParseLogLevel(absl::GetFlag(FLAGS_loglevel));
  if (!level.ok()) {
    std::fprintf(stderr, "%s\n", std::string(level.status().message()).c_str());
    return 2;
  }
  SetLogLevel(*level);
  absl::StatusOr<WorkerOptions> options = OptionsFromFlags();
  if (!options.ok()) {
    std::fprintf(stderr, "%s\n", std::string(options.status().message()).c_str());
    return 2;
  }
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGQUIT, SIGUSR1}) sigaddset(&set, sig);
  // SIGPIPE too (not waited for): a write to a broker that went away is
  // EPIPE and a reconnect, not the end of the worker. Blocked rather than
  // ignored, so that nothing exec'd or forked inherits SIG_IGN.
  sigset_t blocked = set;
  sigaddset(&blocked, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &blocked, nullptr);
  absl::StatusOr<std::unique_ptr<Worker>> worker = Worker::Create(*std::move(options));
  if (!worker.ok()) {
    Log(LogLevel::kCritical, "cannot start: ", worker.status().message());
    return 1;
  }
  std::thread(SignalLoop, set, worker->get()).detach();
  absl::Status ran = (*worker)->Run();
  if (!ran.ok()) {
    Log(LogLevel::kCritical, ran.message());
    return 1;
  }
  return 0;
}

}  // namespace celery
}  // namespace forkserver
