// Sandboxed /bin/true, launched and waited for, in one run:
//   plain        posix_spawn + wait, no sandbox
//   per-launch   LaunchSandboxed with build_action (every step per launch)
//   template     TemplatePrototype: namespaces + view once, per launch a
//                child with its own pid ns and /proc, rlimits, caps,
//                no_new_privs, seccomp, exec
//   template+cg  the same plus a v1 cgroup leaf (memory+pids) per launch
//   bwrap        bwrap --unshare-user --unshare-pid --unshare-ipc
//                --unshare-uts --ro-bind / / --tmpfs /tmp --proc /proc
//                --dev /dev /bin/true
//   firejail     firejail --quiet --noprofile /bin/true
// plus per-step costs (policies that add one step at a time) and the
// parent-side compile. Prints p50/p99 and ratios to bwrap.
//
//   bazel run -c opt //tests/sandbox:sandbox_bench -- [iterations]

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/compiled_sandbox.h"
#include "forkserver/sandbox/launcher.h"
#include "forkserver/sandbox/policy_parser.h"
#include "tests/sandbox/template_prototype.h"

extern char** environ;

namespace forkserver {
namespace sandbox {
namespace {

struct Stats {
  double p50_us = 0;
  double p99_us = 0;
};

// Methods are sampled round-robin, one launch each per round, so every
// method sees the same background load (this 2-core VM is shared).
struct Method {
  Method(std::string n, std::function<bool()> f, int e = 1)
      : name(std::move(n)), once(std::move(f)), every(e) {}
  std::string name;
  std::function<bool()> once;
  int every;  // Sample in every Nth round only (firejail is slow).
  std::vector<double> samples;
  Stats stats() const {
    std::vector<double> sorted = samples;
    std::sort(sorted.begin(), sorted.end());
    if (sorted.empty()) return {};
    return {sorted[sorted.size() / 2], sorted[std::min(sorted.size() - 1, sorted.size() * 99 / 100)]};
  }
};

void RunRounds(std::vector<Method>& methods, int rounds) {
  for (int round = -2; round < rounds; ++round) {  // Two warm-up rounds.
    for (Method& m : methods) {
      if (round >= 0 && round % m.every != 0) continue;
      const auto start = std::chrono::steady_clock::now();
      if (!m.once()) {
        std::fprintf(stderr, "%s: launch failed\n", m.name.c_str());
        std::exit(1);
      }
      const auto end = std::chrono::steady_clock::now();
      if (round >= 0) m.samples.push_back(std::chrono::duration<double, std::micro>(end - start).count());
    }
  }
}

double LoadAverage() {
  double load = 0;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = 0;
    std::fclose(f);
  }
  return load;
}

bool Spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (posix_spawn(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return false;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::unique_ptr<CompiledSandbox> Compile(const Policy& policy) {
  auto compiled = CompiledSandbox::Create(policy);
  if (!compiled.ok()) {
    std::fprintf(stderr, "%s\n", std::string(compiled.status().message()).c_str());
    std::exit(1);
  }
  return std::move(*compiled);
}

bool Launch(const CompiledSandbox& sandbox, CgroupManager* cgroups) {
  auto process = LaunchSandboxed(sandbox, cgroups, {"/bin/true"});
  if (!process.ok()) {
    std::fprintf(stderr, "%s\n", std::string(process.status().message()).c_str());
    return false;
  }
  auto result = WaitSandboxed(**process);
  return result.ok() && result->exit_code == 0;
}

void Row(const char* name, const Stats& s, double bwrap_p50) {
  if (bwrap_p50 > 0) {
    std::printf("%-36s %9.0f %9.0f %10.2fx\n", name, s.p50_us, s.p99_us, bwrap_p50 / s.p50_us);
  } else {
    std::printf("%-36s %9.0f %9.0f\n", name, s.p50_us, s.p99_us);
  }
}

Policy Strip(Policy policy, bool view, bool seccomp) {
  if (!view) {
    policy.clear_filesystem();
  }
  if (!seccomp) policy.clear_seccomp();
  return policy;
}

// Per-step rows: policies that add one step group at a time, and the
// parent-side costs.
struct StepFixtures {
  explicit StepFixtures(const Policy& build_action)
      : policy(build_action),
        nothing(Compile(Policy())),
        ns_only(Compile(Strip(build_action, false, false))),
        ns_view(Compile(Strip(build_action, true, false))) {}
  Policy policy;
  std::unique_ptr<CompiledSandbox> nothing, ns_only, ns_view;
  std::unique_ptr<CgroupLeaf> spare;
};

void AddStepMethods(std::vector<Method>& methods, StepFixtures& f, CgroupManager* cgroups,
                    const Limits& limits) {
  methods.push_back({"clone3 + exec, no sandbox step", [&f] { return Launch(*f.nothing, nullptr); }});
  methods.push_back({"+ user/pid/mnt/ipc/uts namespaces", [&f] { return Launch(*f.ns_only, nullptr); }});
  methods.push_back({"+ view (ro /, tmpfs, proc, dev)", [&f] { return Launch(*f.ns_view, nullptr); }});
  if (cgroups != nullptr) {
    methods.push_back({"parent: cgroup leaf create (v1)", [&f, cgroups, limits] {
      auto leaf = cgroups->CreateLeaf(limits);
      if (leaf.ok()) f.spare = std::move(*leaf);
      return leaf.ok();
    }});
    methods.push_back({"parent: cgroup leaf remove (v1)", [&f] { return f.spare->Remove().ok(); }});
  }
  methods.push_back({"parent: compile policy (+probe)", [&f] {
    return CompiledSandbox::Create(f.policy).ok();
  }});
}

void Print(const std::vector<Method>& methods, size_t headline, int n, double load_before,
           double load_after, const std::string& no_cgroups) {
  auto find = [&methods](const std::string& name) {
    for (const Method& m : methods) if (m.name == name) return m.stats();
    return Stats();
  };
  const double bwrap_p50 = find("bwrap").p50_us;
  std::printf("sandboxed /bin/true, launch + wait, %d rounds interleaved (firejail every 10th), "
              "microseconds; load average %.1f -> %.1f\n", n, load_before, load_after);
  std::printf("%-36s %9s %9s %11s\n", "method", "p50", "p99", "bwrap/this");
  for (size_t i = 0; i < headline; ++i) Row(methods[i].name.c_str(), methods[i].stats(), bwrap_p50);
  std::printf("\nper-step (setup per launch; each row adds steps to the one above)\n");
  for (size_t i = headline; i < headline + 3; ++i) Row(methods[i].name.c_str(), methods[i].stats(), 0);
  Row("+ seccomp, rlimits, caps, nnp", find("per-launch (all steps in child)"), 0);
  for (size_t i = headline + 3; i < methods.size(); ++i) Row(methods[i].name.c_str(), methods[i].stats(), 0);
  const Stats templated = find("template (own pid ns, /proc, /tmp)");
  std::printf("\ntemplate/plain %.2f; per-launch/template %.2f; bwrap/template %.2f; "
              "firejail/template %.2f\n",
              templated.p50_us / find("plain posix_spawn").p50_us,
              find("per-launch (all steps in child)").p50_us / templated.p50_us,
              bwrap_p50 / templated.p50_us,
              find("firejail --quiet --noprofile").p50_us / templated.p50_us);
  if (!no_cgroups.empty()) std::printf("(no cgroup rows: %s)\n", no_cgroups.c_str());
}

int Main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 200;
  const char* profile = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  const std::string path = profile ? absl::StrCat(profile, "/profiles/build_action.textproto")
                                   : "profiles/build_action.textproto";
  auto loaded = LoadPolicyFile(path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "%s\n", std::string(loaded.status().message()).c_str());
    return 1;
  }
  const Policy build_action = *loaded;
  auto full = Compile(build_action);
  auto tmpl = testing::TemplatePrototype::Start(*full, {"/bin/true"}, {});
  testing::TemplateOptions shared_pid;
  shared_pid.pid_namespace_per_child = false;
  auto tmpl_shared = testing::TemplatePrototype::Start(*full, {"/bin/true"}, shared_pid);
  if (!tmpl.ok() || !tmpl_shared.ok()) {
    std::fprintf(stderr, "template: %s\n", std::string(tmpl.status().message()).c_str());
    return 1;
  }
  auto run_template = [](testing::TemplatePrototype& t, const std::vector<int>& fds) {
    absl::StatusOr<int> status = t.Launch(fds);
    return status.ok() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  };
  Limits limits;
  limits.set_memory_bytes(256 << 20);
  limits.set_pids_max(64);
  auto cgroups = CgroupManager::Create(limits);
  const std::vector<std::string> bwrap = {
      "/usr/bin/bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
      "--ro-bind", "/", "/", "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev", "/bin/true"};

  std::vector<Method> methods;
  methods.push_back({"plain posix_spawn", [] { return Spawn({"/bin/true"}); }});
  methods.push_back({"template (own pid ns, /proc, /tmp)", [&] { return run_template(**tmpl, {}); }});
  methods.push_back({"template (shared pid ns)", [&] { return run_template(**tmpl_shared, {}); }});
  if (cgroups.ok()) {
    methods.push_back({"template + v1 cgroup leaf", [&] {
      auto leaf = (*cgroups)->CreateLeaf(limits);
      return leaf.ok() && run_template(**tmpl, (*leaf)->v1_procs_fds()) && (*leaf)->Remove().ok();
    }});
  }
  methods.push_back({"per-launch (all steps in child)", [&] { return Launch(*full, nullptr); }});
  methods.push_back({"bwrap", [&] { return Spawn(bwrap); }});
  methods.push_back({"firejail --quiet --noprofile", [] {
    return Spawn({"/usr/bin/firejail", "--quiet", "--noprofile", "/bin/true"});
  }, 10});
  const size_t headline = methods.size();
  StepFixtures steps(build_action);
  AddStepMethods(methods, steps, cgroups.ok() ? cgroups->get() : nullptr, limits);
  const double load_before = LoadAverage();
  RunRounds(methods, n);
  const double load_after = LoadAverage();

  Print(methods, headline, n, load_before, load_after,
        cgroups.ok() ? "" : std::string(cgroups.status().message()));
  return 0;
}

}  // namespace
}  // namespace sandbox
}  // namespace forkserver

int main(int argc, char** argv) { return forkserver::sandbox::Main(argc, argv); }
