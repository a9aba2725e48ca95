// Fork cost against the size of touched, preloaded-style memory, with and
// without huge pages: fork() + _exit(0) in the child + waitpid, p50/p99,
// for 0, 256 and 1024 MiB held in a lib/memory HugePageArena that is
//   plain    4 KiB pages (MADV_NOHUGEPAGE, so THP "always" cannot help it);
//   thp      MADV_HUGEPAGE, unless THP is "never" (then the rows say so);
//   hugetlb  MAP_HUGETLB, only when /proc/sys/vm/nr_hugepages > 0.
// The parent's page tables are what fork copies, so the slope (us per MiB)
// is the number a huge-page preload changes. scripts/bench.sh fits it.
//
// Prints JSON lines: first {"name": "fork cost environment", ...} with the
// THP mode and hugetlb reserve, then per case and size {"name", "case",
// "mib", "p50_us", "p99_us", "iterations", "backing", "anon_huge_mib"} or
// {"name", "case", "mib", "error"} when the case cannot be measured.
//
//   fork_cost_benchmark [seconds per point, default 2]

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "lib/memory/huge_page_arena.h"
#include "tests/bench/bench_samples.h"

namespace forkserver {
namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
using memory::ArenaOptions;
using memory::HugePageArena;

constexpr int kSizesMiB[] = {0, 256, 1024};
constexpr int kMinForks = 20;

std::string Quoted(const std::string& text) {
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\\", "\\\\"}, {"\"", "\\\""}}),
                      "\"");
}

std::vector<double> ForkWaitSamples(double seconds) {
  std::vector<double> sample;
  const Clock::time_point deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(seconds));
  while (Clock::now() < deadline || sample.size() < kMinForks) {
    const Clock::time_point start = Clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    if (pid < 0) {
      std::perror("fork");
      std::exit(1);
    }
    int status;
    ::waitpid(pid, &status, 0);
    sample.push_back(
        std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  return sample;
}

void PrintError(const std::string& name, const std::string& kase, int mib,
                const std::string& error) {
  std::printf("{\"name\": %s, \"case\": \"%s\", \"mib\": %d, \"error\": %s}\n",
              Quoted(name).c_str(), kase.c_str(), mib, Quoted(error).c_str());
  std::fflush(stdout);
}

void MeasureCase(const std::string& kase, const ArenaOptions& options,
                 double seconds) {
  for (int mib : kSizesMiB) {
    const std::string name = absl::StrCat("fork ", mib, " MiB ", kase);
    HugePageArena arena;
    std::string backing = "none";
    double anon_huge_mib = 0;
    if (mib > 0) {
      absl::StatusOr<HugePageArena> made =
          HugePageArena::Create(size_t(mib) << 20, options);
      if (!made.ok()) {
        PrintError(name, kase, mib, std::string(made.status().message()));
        continue;
      }
      arena = *std::move(made);
      // A case that asked for huge pages and fell back measures nothing new.
      if (kase != "plain" && !arena.fallback_reason().empty()) {
        PrintError(name, kase, mib,
                   absl::StrCat("not measured: ", arena.fallback_reason()));
        continue;
      }
      arena.Touch();
      backing = std::string(memory::ArenaBackingName(arena.backing()));
      absl::StatusOr<size_t> huge = arena.AnonHugePagesBytes();
      if (huge.ok()) anon_huge_mib = double(*huge) / (1 << 20);
    }
    std::vector<double> sample = ForkWaitSamples(seconds);
    DumpSamples(name, sample);
    std::printf(
        "{\"name\": %s, \"case\": \"%s\", \"mib\": %d, \"p50_us\": %.3f, "
        "\"p99_us\": %.3f, \"iterations\": %zu, \"backing\": \"%s\", "
        "\"anon_huge_mib\": %.1f}\n",
        Quoted(name).c_str(), kase.c_str(), mib, QuantileOf(sample, 0.5),
        QuantileOf(sample, 0.99), sample.size(), backing.c_str(),
        anon_huge_mib);
    std::fflush(stdout);
  }
}

}  // namespace
}  // namespace bench
}  // namespace forkserver

int main(int argc, char** argv) {
  using namespace forkserver;
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  absl::StatusOr<std::string> thp = memory::TransparentHugePageMode();
  absl::StatusOr<long> reserved = memory::HugeTlbPagesReserved();
  const std::string thp_mode =
      thp.ok() ? *thp : std::string(thp.status().message());
  std::printf("{\"name\": \"fork cost environment\", \"thp_enabled\": %s, "
              "\"nr_hugepages\": %ld}\n",
              bench::Quoted(thp_mode).c_str(), reserved.ok() ? *reserved : -1);
  std::fflush(stdout);

  memory::ArenaOptions plain;
  plain.transparent_huge_pages = false;
  bench::MeasureCase("plain", plain, seconds);

  // The arena itself says why THP is unavailable ("never", no THP support,
  // madvise refused); those rows carry the reason instead of figures.
  bench::MeasureCase("thp", memory::ArenaOptions{}, seconds);

  if (reserved.ok() && *reserved > 0) {
    memory::ArenaOptions hugetlb;
    hugetlb.hugetlb = true;
    hugetlb.transparent_huge_pages = false;
    bench::MeasureCase("hugetlb", hugetlb, seconds);
  } else {
    bench::PrintError("fork hugetlb", "hugetlb", 0,
                      "not measured: /proc/sys/vm/nr_hugepages is 0 (no "
                      "hugetlb pages reserved; needs root: sysctl "
                      "vm.nr_hugepages=N)");
  }
  return 0;
}
