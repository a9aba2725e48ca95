#include "tools/run_stats.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"

namespace forkserver {

absl::Status ReadProfile(const std::string& path, CommandSpec& spec) {
  if (path.empty()) return absl::OkStatus();
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read profile ", path));
  std::stringstream text;
  text << in.rdbuf();
  spec.policy_text = text.str();
  // Keep the server's "profile:L:C" messages pointing at the file.
  if (spec.policy_text.empty()) spec.policy_text = "# empty profile\n";
  return absl::OkStatus();
}

absl::Status NameProfile(const absl::Status& status, const std::string& path) {
  if (path.empty() || status.ok()) return status;
  return absl::Status(status.code(),
                      absl::StrReplaceAll(status.message(), {{"server: profile:", "server: " + path + ":"}}));
}

std::string KillReasonText(const wire::ExecutionStats& stats) {
  switch (stats.kill_reason()) {
    case wire::KILL_REASON_WALL_TIME: return "wall-time limit";
    case wire::KILL_REASON_CPU_TIME: return "CPU-time limit";
    case wire::KILL_REASON_MEMORY: return "memory limit (OOM)";
    case wire::KILL_REASON_PIDS: return "pids limit";
    case wire::KILL_REASON_SECCOMP:
      return absl::StrCat("seccomp violation (", stats.seccomp_syscall(), ")");
    case wire::KILL_REASON_SIGNAL: return "signal";
    default: return "";
  }
}

namespace {

std::string Json(const wire::ExecutionStats& s) {
  std::string out = absl::StrFormat(
      "{\"wall_usec\":%d,\"user_cpu_usec\":%d,\"system_cpu_usec\":%d,\"max_rss_kib\":%d,",
      s.wall_usec(), s.user_cpu_usec(), s.system_cpu_usec(), s.max_rss_kib());
  if (s.has_cgroup_memory_peak()) {
    absl::StrAppendFormat(&out, "\"cgroup_memory_peak_bytes\":%d,", s.cgroup_memory_peak_bytes());
  }
  absl::StrAppendFormat(
      &out,
      "\"minor_faults\":%d,\"major_faults\":%d,\"voluntary_switches\":%d,"
      "\"involuntary_switches\":%d,\"setup_usec\":%d,\"template_built\":%s,"
      "\"kill_reason\":\"%s\",\"seccomp_syscall\":\"%s\"}",
      s.minor_faults(), s.major_faults(), s.voluntary_switches(), s.involuntary_switches(),
      s.setup_usec(), s.template_built() ? "true" : "false",
      KillReasonText(s).empty() ? "none" : wire::KillReason_Name(s.kill_reason()),
      s.seccomp_syscall());
  return out;
}

}  // namespace

void PrintStats(const wire::ExecutionStats& s, bool table, bool json) {
  const std::string reason = KillReasonText(s);
  if (!reason.empty()) std::fprintf(stderr, "forkserverctl: killed: %s\n", reason.c_str());
  if (!table) return;
  if (json) {
    std::fprintf(stderr, "%s\n", Json(s).c_str());
    return;
  }
  auto row = [](const char* name, const std::string& value) {
    std::fprintf(stderr, "%-22s %s\n", name, value.c_str());
  };
  row("wall time", absl::StrFormat("%.3f ms", s.wall_usec() / 1e3));
  row("user cpu", absl::StrFormat("%.3f ms", s.user_cpu_usec() / 1e3));
  row("system cpu", absl::StrFormat("%.3f ms", s.system_cpu_usec() / 1e3));
  row("peak rss", absl::StrCat(s.max_rss_kib(), " KiB"));
  row("cgroup memory peak",
      s.has_cgroup_memory_peak() ? absl::StrCat(s.cgroup_memory_peak_bytes(), " bytes") : "-");
  row("page faults", absl::StrCat(s.minor_faults(), " minor, ", s.major_faults(), " major"));
  row("context switches", absl::StrCat(s.voluntary_switches(), " voluntary, ",
                                       s.involuntary_switches(), " involuntary"));
  row("sandbox setup", absl::StrFormat("%.3f ms%s", s.setup_usec() / 1e3,
                                       s.template_built() ? " (template built)" : ""));
  row("kill reason", reason.empty() ? "none" : reason);
}

void PrintTemplates(const wire::StatusReply& status) {
  std::printf("templates %d\n", status.templates_size());
  for (const wire::TemplateInfo& t : status.templates()) {
    std::printf("  template '%s' pid %d running %d launches %lld idle %s%s\n",
                t.policy_name().c_str(), t.pid(), t.running(),
                static_cast<long long>(t.launches_total()),
                absl::FormatDuration(absl::Microseconds(t.idle_usec())).c_str(),
                t.entering() ? " (entering)" : "");
  }
}

}  // namespace forkserver
