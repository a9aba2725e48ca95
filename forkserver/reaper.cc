#include "forkserver/reaper.h"

#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <csignal>

#include <cerrno>

#include "absl/time/time.h"
#include "proto/wire.pb.h"

namespace forkserver {
namespace server_internal {
namespace {

wire::ServerMessage ExitNotice(pid_t pid, int status, const rusage& usage) {
  wire::ServerMessage message;
  wire::ExitNotice& notice = *message.mutable_exited();
  notice.set_pid(pid);
  if (WIFSIGNALED(status)) {
    notice.set_signal(WTERMSIG(status));
    notice.set_core_dumped(WCOREDUMP(status));
  } else {
    notice.set_exit_code(WEXITSTATUS(status));
  }
  notice.set_user_cpu_usec(absl::ToInt64Microseconds(
      absl::DurationFromTimeval(usage.ru_utime)));
  notice.set_system_cpu_usec(absl::ToInt64Microseconds(
      absl::DurationFromTimeval(usage.ru_stime)));
  notice.set_max_rss_kib(usage.ru_maxrss);
  return message;
}

}  // namespace

int ReapChildren(ChildTable& children, ConnectionTable& connections) {
  int strangers = 0;
  while (true) {
    // Look before reaping (WNOWAIT): while the child is a zombie its pid,
    // and so its group id, cannot be reused, so a group the client asked
    // to be signalled is SIGKILLed now, grandchildren that ignored the
    // signal included.
    siginfo_t exited{};
    if (::waitid(P_ALL, 0, &exited, WEXITED | WNOHANG | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      return strangers;  // ECHILD: none left.
    }
    if (exited.si_pid == 0) return strangers;
    const pid_t pid = exited.si_pid;
    Child* child = children.Find(pid);
    if (child != nullptr && child->kill_group_on_exit) ::kill(-pid, SIGKILL);
    int status = 0;
    rusage usage{};
    if (::wait4(pid, &status, WNOHANG, &usage) != pid) continue;
    if (child == nullptr) {
      if (children.ReapedWarm(pid)) continue;  // Idle or retired: no client.
      children.CountStranger();
      ++strangers;
      continue;
    }
    // The report is complete now.
    if (child->report) connections.FinishSetup(pid);
    if (child->connection >= 0) {
      connections.NotifyExit(*child, ExitNotice(pid, status, usage));
    }
    children.Erase(pid);
  }
}

}  // namespace server_internal
}  // namespace forkserver
