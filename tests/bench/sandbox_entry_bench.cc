// Sandboxed entry-mode start + join against the plain forkserver start +
// join, interleaved in one run (so both see the same machine noise).
// scripts/bench.sh runs it through tests/bench/extra_sandbox_entry:
//
//   sandbox_entry_bench SECONDS OUT.json
//
// Writes {"title", "rows", "note"}: p50/p99 of a no-op worker's start +
// join per case, and the ratio of each p50 to the plain one. The
// template is built by a warm-up start, outside the timed sample.

#include <cstdio>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "forkserver/sandbox/policy_parser.h"
#include "lib/base/status_macros.h"
#include "lib/forkserver.h"
#include "tests/bench/bench_samples.h"

namespace forkserver {
namespace {

FORKSERVER_ENTRY(SandboxBenchNoop, absl::string_view) { return 0; }

// A build-action shape without the host view: user, pid, mount, ipc and
// uts namespaces, a tmpfs root with /proc and /tmp, every capability
// dropped, no_new_privs, a filter with a few rules, rlimits.
constexpr char kPolicy[] = R"pb(
  name: "bench-entry"
  namespaces {
    user { enabled: true }
    pid: true
    mount: true
    ipc: true
    uts: true
    hostname: "sandbox"
  }
  filesystem {
    mounts { type: TMPFS target: "/tmp" }
    mounts { type: PROC target: "/proc" }
  }
  privileges {}
  rlimits { name: "RLIMIT_CORE" soft: 0 hard: 0 }
  rlimits { name: "RLIMIT_NOFILE" soft: 1024 hard: 4096 }
  seccomp {
    default_action { type: ALLOW }
    rules { syscall: "ptrace" action { type: ERRNO errno_value: 1 } }
    rules { syscall: "mount" action { type: ERRNO errno_value: 1 } }
    rules { syscall: "bpf" action { type: ERRNO errno_value: 1 } }
    rules { syscall: "keyctl" action { type: ERRNO errno_value: 1 } }
    rules { syscall: "personality" action { type: ERRNO errno_value: 1 } }
  }
)pb";

struct Case {
  std::string name;
  std::optional<sandbox::Policy> policy;
  std::vector<double> micros;
  std::vector<double> start_micros;  // Until Start() returned.
  // The template's own account: from its receiving the request to the
  // child's per-child steps done (clone3, namespaces, mounts, rlimits,
  // capabilities, filter), and the child's wall time to its reaping.
  std::vector<double> setup_micros;
  std::vector<double> wall_micros;
};

absl::Status StartJoin(Case& c, bool sample) {
  ProcessOptions options;
  options.start_method = StartMethod::kForkServer;
  options.sandbox = c.policy;
  const absl::Time start = absl::Now();
  Process p("SandboxBenchNoop", "", options);
  RETURN_IF_ERROR(p.Start());
  const double started = absl::ToDoubleMicroseconds(absl::Now() - start);
  RETURN_IF_ERROR(p.Join(absl::Seconds(30)));
  if (p.exitcode() != 0) return absl::InternalError("worker failed");
  if (!sample) return absl::OkStatus();
  c.micros.push_back(absl::ToDoubleMicroseconds(absl::Now() - start));
  c.start_micros.push_back(started);
  if (std::optional<wire::ExecutionStats> stats = p.execution_stats()) {
    c.setup_micros.push_back(static_cast<double>(stats->setup_usec()));
    c.wall_micros.push_back(static_cast<double>(stats->wall_usec()));
  }
  return absl::OkStatus();
}

std::string MedianOrBlank(const std::vector<double>& sample) {
  return sample.empty() ? "" : absl::StrFormat("%.1f", bench::QuantileOf(sample, 0.5));
}

int Main(double seconds, const std::string& out) {
  absl::StatusOr<sandbox::Policy> policy = sandbox::ParsePolicyText(kPolicy, "bench");
  if (!policy.ok()) {
    std::fprintf(stderr, "policy: %s\n", policy.status().ToString().c_str());
    return 1;
  }
  sandbox::Policy with_init = *policy;
  with_init.set_name("bench-entry-init");
  with_init.mutable_namespaces()->set_reaping_init(true);
  // The breakdown: without the filesystem view (no per-child mount
  // namespace, /proc and /tmp), only the pid namespace is per child.
  sandbox::Policy no_view = *policy;
  no_view.set_name("bench-entry-no-view");
  no_view.clear_filesystem();
  no_view.mutable_namespaces()->set_mount(false);
  std::vector<Case> cases(4);
  cases[0].name = "plain forkserver start + join";
  cases[1].name = "sandboxed entry start + join";
  cases[1].policy = *policy;
  cases[2].name = "sandboxed entry + reaping pid 1";
  cases[2].policy = with_init;
  cases[3].name = "sandboxed entry, no view (pid ns per child only)";
  cases[3].policy = no_view;
  for (Case& c : cases) {  // The server's launch and the templates.
    if (absl::Status warm = StartJoin(c, /*sample=*/false); !warm.ok()) {
      std::fprintf(stderr, "%s: %s\n", c.name.c_str(), warm.ToString().c_str());
      return 1;
    }
  }
  const absl::Time end = absl::Now() + absl::Seconds(seconds) * cases.size();
  while (absl::Now() < end || cases[0].micros.size() < 50) {
    for (Case& c : cases) {
      if (absl::Status s = StartJoin(c, /*sample=*/true); !s.ok()) {
        std::fprintf(stderr, "%s: %s\n", c.name.c_str(), s.ToString().c_str());
        return 1;
      }
    }
  }
  const double plain = bench::QuantileOf(cases[0].micros, 0.5);
  std::string rows;
  for (Case& c : cases) {
    bench::DumpSamples(c.name, c.micros);
    const double p50 = bench::QuantileOf(c.micros, 0.5);
    absl::StrAppend(&rows, rows.empty() ? "" : ",\n",
                    absl::StrFormat("    {\"case\": \"%s\", \"n\": %d, \"p50 us\": %.1f, "
                                    "\"p99 us\": %.1f, \"p50 vs plain\": \"%.2fx\", "
                                    "\"start p50 us\": %.1f, \"template setup p50 us\": \"%s\", "
                                    "\"child wall p50 us\": \"%s\"}",
                                    c.name, c.micros.size(), p50,
                                    bench::QuantileOf(c.micros, 0.99), p50 / plain,
                                    bench::QuantileOf(c.start_micros, 0.5),
                                    MedianOrBlank(c.setup_micros), MedianOrBlank(c.wall_micros)));
    std::fprintf(stderr, "%s: n=%zu p50=%.1f us p99=%.1f us (start p50 %.1f us)\n",
                 c.name.c_str(), c.micros.size(), p50, bench::QuantileOf(c.micros, 0.99),
                 bench::QuantileOf(c.start_micros, 0.5));
  }
  std::ofstream file(out);
  file << "{\n  \"title\": \"Sandboxed entry-mode worker: start + join vs plain forkserver\",\n"
       << "  \"rows\": [\n" << rows << "\n  ],\n"
       << "  \"note\": \"A no-op Process over the forkserver start method, the three cases "
          "interleaved in one run. Sandboxed: forked from the policy's template (user, pid, "
          "mount, ipc, uts namespaces; tmpfs root with /proc and /tmp, built once), then own "
          "pid + mount namespace with a fresh /proc and /tmp, rlimits, capabilities dropped, "
          "no_new_privs, close_others, the precompiled filter, the entry. Template setup: the "
          "template's own time from the request to the child's steps done (clone3 "
          "included); child wall: from then to its reaping. Goal: sandboxed "
          "p50 <= 600 us.\"\n}\n";
  return file.good() ? 0 : 1;
}

}  // namespace
}  // namespace forkserver

int main(int argc, char** argv) {
  if (absl::Status init = forkserver::Init(argc, argv); !init.ok()) {
    std::fprintf(stderr, "Init: %s\n", init.ToString().c_str());
    return 1;
  }
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s SECONDS OUT.json\n", argv[0]);
    return 2;
  }
  return forkserver::Main(std::atof(argv[1]), argv[2]);
}
