#include "tests/support/test_watchdog.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "gtest/gtest.h"

namespace forkserver::testing {
namespace {

constexpr int kDefaultLimitSeconds = 300;

// What the report prints, by a shell the handler starts: the handler
// itself may only make async-signal-safe calls, and reading /proc and
// running gdb are not that. $1 the test, $2 our pid, $3 the limit.
constexpr char kReportScript[] = R"sh(
echo "*** test watchdog: $1 still running after $3 s; aborting"
for t in /proc/$2/task/*; do
  echo "  thread ${t##*/} ($(cat $t/comm)): wchan=$(cat $t/wchan) syscall=$(cut -d' ' -f1 $t/syscall)"
done
awk -v p="$2" '$4 == p { print "  child " $1 " " $2 " state=" $3 }' /proc/[0-9]*/stat 2>/dev/null | head -n 40
if [ -x /usr/bin/gdb ]; then
  /usr/bin/gdb -p "$2" -batch -nx -ex "thread apply all bt" 2>&1
else
  echo "  (no /usr/bin/gdb: no stacks)"
fi
)sh";

// Built before each test, read by the handler: no allocation there.
std::string report_test, report_pid, report_limit;
const char* report_argv[8];

void OnAlarm(int) {
  const pid_t shell = ::fork();
  if (shell == 0) {
    ::dup2(STDERR_FILENO, STDOUT_FILENO);  // The test log collects stderr.
    ::execv("/bin/sh", const_cast<char* const*>(report_argv));
    ::_exit(127);
  }
  if (shell > 0) {
    while (::waitpid(shell, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  ::abort();
}

int LimitSeconds() {
  const char* text = std::getenv("FORKSERVER_TEST_WATCHDOG_SECONDS");
  int seconds = kDefaultLimitSeconds;
  if (text != nullptr && !absl::SimpleAtoi(text, &seconds)) {
    std::fprintf(stderr, "FORKSERVER_TEST_WATCHDOG_SECONDS=%s is not a number; using %d\n",
                 text, kDefaultLimitSeconds);
    seconds = kDefaultLimitSeconds;
  }
  return seconds;
}

class Watchdog : public ::testing::EmptyTestEventListener {
 public:
  explicit Watchdog(int limit_seconds) : limit_seconds_(limit_seconds) {}

  void OnTestStart(const ::testing::TestInfo& test) override {
    report_test = std::string(test.test_suite_name()) + "." + test.name();
    report_pid = std::to_string(::getpid());
    report_limit = std::to_string(limit_seconds_);
    // sh -c SCRIPT $0 $1 $2 $3.
    report_argv[0] = "sh";
    report_argv[1] = "-c";
    report_argv[2] = kReportScript;
    report_argv[3] = "watchdog";
    report_argv[4] = report_test.c_str();
    report_argv[5] = report_pid.c_str();
    report_argv[6] = report_limit.c_str();
    report_argv[7] = nullptr;
    ::alarm(static_cast<unsigned>(limit_seconds_));
  }

  void OnTestEnd(const ::testing::TestInfo&) override { ::alarm(0); }

 private:
  const int limit_seconds_;
};

}  // namespace

void InstallTestWatchdog() {
  const int limit = LimitSeconds();
  if (limit <= 0) return;
  struct sigaction action {};
  action.sa_handler = OnAlarm;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGALRM, &action, nullptr);
  ::testing::UnitTest::GetInstance()->listeners().Append(new Watchdog(limit));
}

}  // namespace forkserver::testing
