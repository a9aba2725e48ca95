// Warm workers (forkserver/warm_pool.h) against the cold path and raw
// fork, in one run of one binary: scripts/bench.sh's "warm workers"
// section (through tests/bench/extra_warm).
//
//   warm_worker_benchmark SECONDS OUTPUT.json
//
// Measures, with the server keeping 2 warm workers and with 0 (cold):
//   - request to running: from Process::Start to the entry's first line
//     (it writes its CLOCK_MONOTONIC to a pipe), p50 and p99; in the warm
//     case every sample is taken with the pool full (waited for outside the
//     timing), and the share a warm worker served is reported;
//   - start + join p50 of a no-op worker, against raw fork()+_exit+waitpid
//     of this binary in the same run;
//   - beside both, the floor of any server with warm workers: the same two
//     journeys through bare relay processes (relay_floor.h);
//   - fresh-worker throughput: 2 threads starting and joining no-op
//     workers back to back, workers per second;
//   - an idle warm worker's private dirty memory (smaps_rollup), beside
//     the server's, with a 32 MiB preloaded table in the server.
// Writes {"title", "rows", "note"} (the report's extra-section format).
// Numbers only; nothing is asserted.

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "lib/forkserver.h"
#include "tests/bench/relay_floor.h"
#include "tests/bench/warm_server.h"
#include "tools/latency_stats.h"

namespace forkserver {
namespace {

// A preloaded table the server holds (and warm workers share), of
// $WARM_BENCH_PRELOAD_MIB MiB (read by the server at launch; 0 or unset:
// none, so that latencies compare with a raw fork of this binary).
std::vector<char>* g_table = nullptr;
FORKSERVER_PRELOAD(WarmBenchTable) {
  int mib = 0;
  const char* text = std::getenv("WARM_BENCH_PRELOAD_MIB");
  if (text != nullptr && absl::SimpleAtoi(text, &mib) && mib > 0) {
    g_table = new std::vector<char>(static_cast<size_t>(mib) << 20, 1);
  }
  return absl::OkStatus();
}

int64_t MonotonicNanos() {
  timespec now;
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

FORKSERVER_ENTRY(WarmBenchNoop, absl::string_view) { return 0; }

// Its first act: its clock on fd 3.
FORKSERVER_ENTRY(WarmBenchStamp, absl::string_view) {
  const int64_t now = MonotonicNanos();
  return ::write(3, &now, sizeof(now)) == sizeof(now) ? 0 : 1;
}

int OpenFdCount(pid_t pid) {
  DIR* dir = ::opendir(absl::StrCat("/proc/", pid, "/fd").c_str());
  if (dir == nullptr) return -1;
  int count = 0;
  while (dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
  ::closedir(dir);
  return count;
}

// The pool is full and every child in it is through its first half of
// setup (only 0, 1, 2 and its channel open): waiting on its channel.
absl::StatusOr<ForkServerInfo> WaitWarmPoolIdle() {
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
    if (!info.ok()) return info;
    bool idle = info->warm_ready == info->warm_target;
    for (pid_t pid : info->warm_pids) idle = idle && OpenFdCount(pid) == 4;
    if (idle) return info;
    absl::SleepFor(absl::Microseconds(500));
  }
  return absl::DeadlineExceededError("warm pool did not fill");
}

int64_t WarmHits() {
  absl::StatusOr<ForkServerInfo> info = GetForkServerInfo();
  return info.ok() ? info->warm_hits : 0;
}

struct Latencies {
  std::vector<absl::Duration> sample;
  double warm_share = 0;
};

Latencies RequestToRunning(absl::Duration budget, bool wait_for_pool) {
  Latencies result;
  const int64_t hits_before = WarmHits();
  const absl::Time end = absl::Now() + budget;
  while (absl::Now() < end && result.sample.size() < 2000) {
    if (wait_for_pool && !WaitWarmPoolIdle().ok()) break;
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) break;
    UniqueFd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
    ProcessOptions options;
    options.fds = {{write_end.get(), 3}};
    const int64_t start = MonotonicNanos();
    Process process("WarmBenchStamp", "", options);
    if (!process.Start().ok()) break;
    write_end.reset();
    int64_t running = 0;
    const bool got = ::read(read_end.get(), &running, sizeof(running)) ==
                     sizeof(running);
    if (!process.Join(absl::Seconds(30)).ok() || !got) break;
    result.sample.push_back(absl::Nanoseconds(running - start));
  }
  if (!result.sample.empty()) {
    result.warm_share =
        static_cast<double>(WarmHits() - hits_before) /
        result.sample.size();
  }
  return result;
}

Latencies StartJoin(absl::Duration budget) {
  Latencies result;
  const int64_t hits_before = WarmHits();
  const absl::Time end = absl::Now() + budget;
  while (absl::Now() < end) {
    const absl::Time start = absl::Now();
    Process process("WarmBenchNoop", "", ProcessOptions{});
    if (!process.Start().ok() || !process.Join(absl::Seconds(30)).ok()) break;
    result.sample.push_back(absl::Now() - start);
  }
  if (!result.sample.empty()) {
    result.warm_share =
        static_cast<double>(WarmHits() - hits_before) /
        result.sample.size();
  }
  return result;
}

std::vector<absl::Duration> RawForkWaitpid(absl::Duration budget) {
  std::vector<absl::Duration> sample;
  const absl::Time end = absl::Now() + budget;
  while (absl::Now() < end) {
    const absl::Time start = absl::Now();
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status;
    ::waitpid(pid, &status, 0);
    sample.push_back(absl::Now() - start);
  }
  return sample;
}

double Throughput(absl::Duration budget, int threads) {
  std::atomic<int64_t> done{0};
  std::atomic<bool> failed{false};
  const absl::Time start = absl::Now();
  const absl::Time end = start + budget;
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      while (absl::Now() < end && !failed) {
        Process process("WarmBenchNoop", "", ProcessOptions{});
        if (!process.Start().ok() || !process.Join(absl::Seconds(30)).ok()) {
          failed = true;
          return;
        }
        ++done;
      }
    });
  }
  for (std::thread& worker : workers) worker.join();
  if (failed) return -1;
  return done / absl::ToDoubleSeconds(absl::Now() - start);
}

// Private_Dirty of `pid` in KiB (smaps_rollup), -1 when unreadable.
int64_t PrivateDirtyKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/smaps_rollup"));
  long long kib = -1;
  std::string line;
  while (std::getline(in, line)) {
    std::sscanf(line.c_str(), "Private_Dirty: %lld kB", &kib);
  }
  return kib;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one;
}

std::string Micros(absl::Duration d) {
  return absl::StrFormat("%.1f", absl::ToDoubleMicroseconds(d));
}

std::string JsonString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

struct Row {
  std::string measure, warm, cold, baseline, goal;
};

int Main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: warm_worker_benchmark SECONDS OUTPUT.json\n");
    return 2;
  }
  double seconds = 2;
  if (!absl::SimpleAtod(argv[1], &seconds) || seconds <= 0) seconds = 2;
  const absl::Duration budget = absl::Seconds(seconds);
  std::vector<Row> rows;

  // Raw fork of this binary, the baseline of start + join, and the floors.
  const absl::Duration raw_p50 = Quantile(RawForkWaitpid(budget), 0.5);
  const std::vector<absl::Duration> floor_running =
      bench::RelayRequestToRunning(budget);
  const std::vector<absl::Duration> floor_start_join =
      bench::RelayStartJoin(budget);
  if (floor_running.empty() || floor_start_join.empty()) return 1;
  auto floor = [](const std::vector<absl::Duration>& sample, double q) {
    return absl::StrCat(Micros(Quantile(sample, q)), " relay floor");
  };

  if (!bench::UseWarmWorkers(2)) return 1;
  const Latencies warm_running = RequestToRunning(budget, true);
  if (!WaitWarmPoolIdle().ok()) return 1;
  const Latencies warm_start_join = StartJoin(budget);
  const double warm_rate = Throughput(budget, 2);
  // Idle warm workers' private memory, without and with a 32 MiB table
  // preloaded in the server (a server launched with it).
  std::vector<std::string> idle_kib[2];
  int64_t server_kib[2] = {-1, -1};
  for (int with_table = 0; with_table < 2; ++with_table) {
    if (with_table) {
      ::setenv("WARM_BENCH_PRELOAD_MIB", "32", 1);
      if (!StopForkServer().ok() || !GetForkServerInfo().ok()) return 1;
      ::unsetenv("WARM_BENCH_PRELOAD_MIB");
    }
    absl::StatusOr<ForkServerInfo> idle = WaitWarmPoolIdle();
    if (!idle.ok()) return 1;
    for (pid_t pid : idle->warm_pids) {
      idle_kib[with_table].push_back(absl::StrCat(PrivateDirtyKib(pid)));
    }
    server_kib[with_table] = PrivateDirtyKib(idle->pid);
  }

  if (!bench::UseWarmWorkers(0) || !GetForkServerInfo().ok()) return 1;
  const Latencies cold_running = RequestToRunning(budget, false);
  const Latencies cold_start_join = StartJoin(budget);
  const double cold_rate = Throughput(budget, 2);
  bench::UseWarmWorkers(2);

  rows.push_back({"request to running p50 (us)",
                  Micros(Quantile(warm_running.sample, 0.5)),
                  Micros(Quantile(cold_running.sample, 0.5)),
                  floor(floor_running, 0.5), "<= 25"});
  rows.push_back({"request to running p99 (us)",
                  Micros(Quantile(warm_running.sample, 0.99)),
                  Micros(Quantile(cold_running.sample, 0.99)),
                  floor(floor_running, 0.99), "<= 150"});
  rows.push_back({"  share served warm",
                  absl::StrFormat("%.2f", warm_running.warm_share),
                  absl::StrFormat("%.2f", cold_running.warm_share), "", ""});
  const absl::Duration warm_p50 = Quantile(warm_start_join.sample, 0.5);
  const absl::Duration cold_p50 = Quantile(cold_start_join.sample, 0.5);
  rows.push_back({"start + join p50 (us), back to back", Micros(warm_p50),
                  Micros(cold_p50),
                  absl::StrCat(Micros(raw_p50), " raw fork+waitpid"), ""});
  const absl::Duration floor_p50 = Quantile(floor_start_join, 0.5);
  rows.push_back({"  floor: warm start + join through a bare relay",
                  absl::StrFormat("%.2fx the floor",
                                  absl::FDivDuration(warm_p50, floor_p50)),
                  "", absl::StrCat(Micros(floor_p50), " relay floor"), ""});
  rows.push_back(
      {"  vs raw fork+waitpid",
       absl::StrFormat("%.2fx", absl::FDivDuration(warm_p50, raw_p50)),
       absl::StrFormat("%.2fx", absl::FDivDuration(cold_p50, raw_p50)), "1.00x",
       "<= 1.0x"});
  rows.push_back({"  share served warm",
                  absl::StrFormat("%.2f", warm_start_join.warm_share),
                  absl::StrFormat("%.2f", cold_start_join.warm_share), "", ""});
  rows.push_back({"fresh workers/s (2 threads, start + join)",
                  absl::StrFormat("%.0f", warm_rate),
                  absl::StrFormat("%.0f", cold_rate), "", ">= 3000"});
  rows.push_back({"idle warm worker Private_Dirty (KiB)",
                  absl::StrJoin(idle_kib[0], ", "), "",
                  absl::StrCat(server_kib[0], " the server's"), "report"});
  rows.push_back({"  with 32 MiB preloaded in the server",
                  absl::StrJoin(idle_kib[1], ", "), "",
                  absl::StrCat(server_kib[1], " the server's"), "report"});

  std::string json = "{\"title\": \"Warm workers (2 kept) against the cold "
                     "path (0) and raw fork\", \"rows\": [";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    json += absl::StrCat(i ? ", " : "", "{\"measure\": ", JsonString(r.measure),
                         ", \"warm (2)\": ", JsonString(r.warm),
                         ", \"cold (0)\": ", JsonString(r.cold),
                         ", \"baseline\": ", JsonString(r.baseline),
                         ", \"goal\": ", JsonString(r.goal), "}");
  }
  json += absl::StrCat(
      "], \"note\": ", JsonString(absl::StrCat(
          "One run, ", seconds, " s per case, load average ", LoadAverage(),
          " at the end; raw fork is this binary's, and nothing is preloaded "
          "for the latencies. Request to running: Process::Start to the entry's first "
          "line; warm samples taken with the pool full. Relay floor: the same "
          "journey through bare processes and raw syscalls (client, relay, "
          "pre-forked worker; tests/bench/relay_floor.h), no protocol. Start + join and "
          "throughput run back to back: the pool refills only when the "
          "server is idle, so the share served warm is shown.")),
      "}\n");
  std::ofstream out(argv[2]);
  out << json;
  std::fputs(json.c_str(), stdout);
  return out.good() ? 0 : 1;
}

}  // namespace
}  // namespace forkserver

int main(int argc, char** argv) {
  if (absl::Status init = forkserver::Init(argc, argv); !init.ok()) {
    std::fprintf(stderr, "%s\n", init.ToString().c_str());
    return 1;
  }
  // As a latency-minded deployment would run (fork_server_client.h).
  forkserver::ForkServerOptions options = forkserver::GetForkServerOptions();
  options.bind_symbols_at_launch = true;
  forkserver::SetForkServerOptions(options);
  return forkserver::Main(argc, argv);
}
