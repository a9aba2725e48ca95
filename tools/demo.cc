// The heavy-init story, measured: an application whose initialisation
// builds a large table (about a second) starts N workers with each start
// method, and prints what each costs.
//
//   bazel run -c opt //tools:demo -- --workers=50
//
// Every worker checks it sees the finished table (a checksum) and reports
// on a pipe the moment it runs; a worker's start latency is from its
// Process::Start() call to that report.

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "lib/forkserver.h"
#include "lib/registry/preload.h"
#include "tools/latency_stats.h"

ABSL_FLAG(int, workers, 50, "workers to start with each start method");
ABSL_FLAG(std::string, methods, "forkserver,fork,spawn",
          "start methods to compare, in order");
ABSL_FLAG(int, table_mib, 32, "size of the preloaded table, MiB");
ABSL_FLAG(int, app_state_mib, 256,
          "memory the application itself holds beyond the table (its own "
          "caches and buffers), MiB; the fork server never has it");
ABSL_FLAG(int, rounds, 80,
          "hash rounds per table entry (the initialisation's work)");

namespace {

// The application's heavy state, built once by the preload.
std::vector<uint64_t>* table = nullptr;
uint64_t table_checksum = 0;

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

FORKSERVER_PRELOAD(BuildTable) {
  // The table's size and work come from the flags, which the server and
  // spawned workers see too: they get the application's argv.
  const std::vector<std::string>& args = forkserver::MainArgs();
  size_t mib = 32;
  int rounds = 80;
  for (const std::string& arg : args) {
    absl::string_view value = arg;
    if (absl::ConsumePrefix(&value, "--table_mib=")) {
      (void)absl::SimpleAtoi(value, &mib);
    } else if (absl::ConsumePrefix(&value, "--rounds=")) {
      (void)absl::SimpleAtoi(value, &rounds);
    }
  }
  table = new std::vector<uint64_t>(mib * 1024 * 1024 / sizeof(uint64_t));
  uint64_t sum = 0;
  for (size_t i = 0; i < table->size(); ++i) {
    uint64_t x = i;
    for (int r = 0; r < rounds; ++r) x = Mix(x);
    (*table)[i] = x;
    sum ^= x;
  }
  table_checksum = sum;
  return absl::OkStatus();
}

// Proves it has the table (a few lookups and the checksum), then reports.
FORKSERVER_ENTRY(DemoWorker, absl::string_view arg) {
  uint64_t seed = 0;
  (void)absl::SimpleAtoi(arg, &seed);
  uint64_t probe = 0;
  for (int i = 0; i < 64; ++i) {
    probe ^= (*table)[Mix(seed + i) % table->size()];
  }
  const std::string report = absl::StrCat(table_checksum, " ", probe);
  return ::write(3, report.data(), report.size()) ==
                 static_cast<ssize_t>(report.size())
             ? 0
             : 1;
}

struct MethodResult {
  std::string method;
  absl::Duration setup;  // One-time cost before the first worker.
  std::vector<absl::Duration> latencies;
  absl::Duration total;
  int failures = 0;
};

// Records when each worker's report arrives, while the main thread starts
// the next ones. epoll: a pipe added while Run() waits is watched at once.
class ReportCollector {
 public:
  explicit ReportCollector(int count)
      : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
        pipes_(count),
        arrivals_(count),
        reports_(count) {}

  // Called by the starting thread; the pipe is owned here, its number
  // travels in the event for the reading thread.
  void Add(int index, forkserver::UniqueFd read_end) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = (static_cast<uint64_t>(index) << 32) |
                     static_cast<uint32_t>(read_end.get());
    const int fd = read_end.get();
    pipes_[index] = std::move(read_end);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event);
  }

  // Returns once `expected` reports (or EOFs) arrived.
  void Run(int expected) {
    int done = 0;
    epoll_event events[64];
    while (done < expected) {
      const int ready = ::epoll_wait(epoll_.get(), events, 64, -1);
      const absl::Time now = absl::Now();
      for (int i = 0; i < ready; ++i) {
        const int index = static_cast<int>(events[i].data.u64 >> 32);
        const int fd = static_cast<int>(events[i].data.u64 & 0xffffffffu);
        char buffer[128];
        const ssize_t n = ::read(fd, buffer, sizeof(buffer));
        arrivals_[index] = now;
        reports_[index] = n > 0 ? std::string(buffer, n) : "";
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
        ++done;
      }
    }
  }

  absl::Time arrival(int index) const { return arrivals_[index]; }
  const std::string& report(int index) const { return reports_[index]; }

 private:
  forkserver::UniqueFd epoll_;
  std::vector<forkserver::UniqueFd> pipes_;
  std::vector<absl::Time> arrivals_;
  std::vector<std::string> reports_;
};

// The one-time cost a method pays before its first worker: launching the
// server and its preload, or (fork) the application's own preload.
absl::StatusOr<absl::Duration> SetUp(forkserver::StartMethod method,
                                     absl::Duration init_time) {
  const absl::Time start = absl::Now();
  switch (method) {
    case forkserver::StartMethod::kForkServer: {
      absl::Status launched = forkserver::GetForkServerInfo().status();
      if (!launched.ok()) return launched;
      break;
    }
    case forkserver::StartMethod::kFork:
      // Already done in main(), where it took init_time.
      return init_time;
    case forkserver::StartMethod::kSpawn:
      return absl::ZeroDuration();  // Every worker pays for itself.
  }
  return absl::Now() - start;
}

absl::StatusOr<MethodResult> Measure(forkserver::StartMethod method,
                                     int workers, absl::Duration init_time,
                                     uint64_t expected_checksum) {
  MethodResult result;
  result.method = std::string(forkserver::StartMethodName(method));
  absl::StatusOr<absl::Duration> setup = SetUp(method, init_time);
  if (!setup.ok()) return setup.status();
  result.setup = *setup;

  ReportCollector collector(workers);
  std::thread reader([&] { collector.Run(workers); });
  std::vector<forkserver::Process> processes;
  std::vector<absl::Time> started(workers);
  for (int i = 0; i < workers; ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError("pipe2");
    forkserver::UniqueFd read_end(fds[0]), write_end(fds[1]);
    forkserver::ProcessOptions options;
    options.start_method = method;
    options.fds = {{write_end.get(), 3}};
    processes.emplace_back("DemoWorker", absl::StrCat(i), options);
    started[i] = absl::Now();
    absl::Status status = processes.back().Start();
    if (!status.ok()) {
      reader.detach();
      return status;
    }
    collector.Add(i, std::move(read_end));
  }
  reader.join();
  absl::Time last = started[0];
  for (int i = 0; i < workers; ++i) {
    result.latencies.push_back(collector.arrival(i) - started[i]);
    last = std::max(last, collector.arrival(i));
    std::vector<std::string> fields = absl::StrSplit(collector.report(i), ' ');
    uint64_t checksum = 0;
    if (fields.size() != 2 || !absl::SimpleAtoi(fields[0], &checksum) ||
        checksum != expected_checksum) {
      ++result.failures;
    }
  }
  result.total = last - started[0];
  for (forkserver::Process& process : processes) {
    if (!process.Join().ok() || process.exitcode() != 0) ++result.failures;
  }
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  if (absl::Status init = forkserver::Init(argc, argv); !init.ok()) {
    std::fprintf(stderr, "%s\n", init.ToString().c_str());
    return 1;
  }
  absl::ParseCommandLine(argc, argv);
  const int workers = absl::GetFlag(FLAGS_workers);

  // What the workers should see: build the table once here to know its
  // checksum (and how long initialisation takes on this machine).
  const absl::Time init_start = absl::Now();
  if (absl::Status preloaded = forkserver::RunPreloadsOnce(); !preloaded.ok()) {
    std::fprintf(stderr, "%s\n", preloaded.ToString().c_str());
    return 1;
  }
  const absl::Duration init_time = absl::Now() - init_start;
  const uint64_t expected = table_checksum;

  // A real application holds more than its preloaded state. Touch every
  // page so it is resident, as a working set would be.
  std::vector<char> app_state(
      static_cast<size_t>(absl::GetFlag(FLAGS_app_state_mib)) << 20);
  for (size_t i = 0; i < app_state.size(); i += 4096) app_state[i] = 1;

  std::printf(
      "forkserver demo: the application's initialisation builds a %d MiB "
      "table in %s;\nthe application also holds %d MiB of its own state.\n"
      "Starting %d workers with each start method; each checks the table "
      "and reports.\n\n",
      absl::GetFlag(FLAGS_table_mib), forkserver::FormatLatency(init_time).c_str(),
      absl::GetFlag(FLAGS_app_state_mib), workers);
  std::fflush(stdout);

  std::vector<MethodResult> results;
  for (absl::string_view name :
       absl::StrSplit(absl::GetFlag(FLAGS_methods), ',')) {
    absl::StatusOr<forkserver::StartMethod> method =
        forkserver::ParseStartMethod(name);
    if (!method.ok()) {
      std::fprintf(stderr, "%s\n", method.status().ToString().c_str());
      return 2;
    }
    absl::StatusOr<MethodResult> result =
        Measure(*method, workers, init_time, expected);
    if (!result.ok()) {
      std::fprintf(stderr, "%.*s: %s\n", static_cast<int>(name.size()),
                   name.data(), result.status().ToString().c_str());
      return 1;
    }
    results.push_back(*std::move(result));
  }

  std::printf("%-11s %16s %14s %14s %18s %9s\n", "method", "one-time setup",
              "start p50", "start p99", "total, all workers", "failures");
  for (const MethodResult& r : results) {
    std::printf("%-11s %16s %14s %14s %18s %9d\n", r.method.c_str(),
                r.setup == absl::ZeroDuration()
                    ? "-"
                    : forkserver::FormatLatency(r.setup).c_str(),
                forkserver::FormatLatency(forkserver::Quantile(r.latencies, 0.5)).c_str(),
                forkserver::FormatLatency(forkserver::Quantile(r.latencies, 0.99)).c_str(),
                forkserver::FormatLatency(r.total).c_str(), r.failures);
  }
  const MethodResult* server = nullptr;
  const MethodResult* spawn = nullptr;
  const MethodResult* fork = nullptr;
  for (const MethodResult& r : results) {
    if (r.method == "forkserver") server = &r;
    if (r.method == "spawn") spawn = &r;
    if (r.method == "fork") fork = &r;
  }
  if (server != nullptr && spawn != nullptr) {
    std::printf(
        "\nforkserver pays the initialisation once (%s), then starts each "
        "worker in %s (p50).\nspawn re-runs it in every worker: %d workers "
        "took %s in all against %s (%.0fx).\n",
        forkserver::FormatLatency(server->setup).c_str(),
        forkserver::FormatLatency(forkserver::Quantile(server->latencies, 0.5))
            .c_str(),
        workers, forkserver::FormatLatency(spawn->total).c_str(),
        forkserver::FormatLatency(server->total).c_str(),
        absl::FDivDuration(spawn->total, server->total));
  }
  if (server != nullptr && fork != nullptr) {
    std::printf(
        "fork copies the whole application (table and its own state) for "
        "every worker: %.1fx\nthe forkserver's p50 here, and unsafe once "
        "the application has threads. The fork\nserver is a fresh, "
        "single-threaded process holding only the preloaded state.\n",
        absl::FDivDuration(forkserver::Quantile(fork->latencies, 0.5),
                           forkserver::Quantile(server->latencies, 0.5)));
  }
  int failures = 0;
  for (const MethodResult& r : results) failures += r.failures;
  return failures == 0 ? 0 : 1;
}
