#include "tests/celery/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"

extern char** environ;

namespace forkserver {
namespace celery {
namespace testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

absl::StatusOr<Child> Child::Start(const std::vector<std::string>& argv,
                                   const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Child child;
  const int err = posix_spawn(&child.pid_, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    child.pid_ = 0;
    return absl::InternalError(absl::StrCat("posix_spawn ", argv[0], ": ", strerror(err)));
  }
  return child;
}

Child& Child::operator=(Child&& other) noexcept {
  if (this != &other) {
    Kill();
    pid_ = other.pid_;
    other.pid_ = 0;
  }
  return *this;
}

Child::~Child() { Kill(); }

void Child::Signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

absl::StatusOr<int> Child::Wait(absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  const absl::Time deadline = absl::Now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = 0;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    if (absl::Now() >= deadline) return absl::DeadlineExceededError("still running");
    absl::SleepFor(absl::Milliseconds(10));
  }
}

void Child::Kill() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = 0;
}

absl::StatusOr<std::string> RunCapture(const std::vector<std::string>& argv,
                                       absl::Duration timeout) {
  TempDir dir;
  const std::string out = dir.File("out");
  absl::StatusOr<Child> child = Child::Start(argv, out);
  if (!child.ok()) return child.status();
  absl::StatusOr<int> code = child->Wait(timeout);
  if (!code.ok()) {
    return absl::DeadlineExceededError(
        absl::StrCat(absl::StrJoin(argv, " "), " timed out: ", ReadFile(out)));
  }
  if (*code != 0) {
    return absl::InternalError(absl::StrCat(absl::StrJoin(argv, " "), " exited ",
                                            *code, ": ", ReadFile(out)));
  }
  return ReadFile(out);
}

bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!condition()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return true;
}

TempDir::TempDir() {
  char pattern[] = "/tmp/celtest-XXXXXX";
  path_ = ::mkdtemp(pattern);
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

RedisServer::RedisServer(const TempDir& dir, bool durable)
    : dir_(dir), durable_(durable), socket_(dir.File("redis.sock")) {}

absl::Status RedisServer::Start() {
  std::vector<std::string> argv = {"/usr/bin/redis-server", "--port", "0",
                                   "--unixsocket", socket_, "--dir", dir_.path(),
                                   "--save", ""};
  if (durable_) {
    argv.insert(argv.end(), {"--appendonly", "yes", "--appendfsync", "always"});
  } else {
    argv.insert(argv.end(), {"--appendonly", "no"});
  }
  absl::StatusOr<Child> child = Child::Start(argv, dir_.File("redis.log"));
  if (!child.ok()) return child.status();
  child_ = *std::move(child);
  if (!WaitFor([this] { return Cli({"PING"}).value_or("") == "PONG\n"; },
               absl::Seconds(10))) {
    return absl::UnavailableError("redis-server did not start: " +
                                  ReadFile(dir_.File("redis.log")));
  }
  return absl::OkStatus();
}

void RedisServer::Kill() { child_.Kill(); }

absl::Status RedisServer::Restart() {
  Kill();
  ::unlink(socket_.c_str());
  return Start();
}

absl::StatusOr<std::string> RedisServer::Cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"/usr/bin/redis-cli", "-s", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCapture(argv, absl::Seconds(10));
}

Worker::Worker(const TempDir& dir, std::string name, std::string broker_url,
               std::vector<std::string> flags)
    : name_(std::move(name)),
      broker_url_(std::move(broker_url)),
      log_(dir.File(name_ + ".log")),
      flags_(std::move(flags)) {}

absl::Status Worker::Start() {
  std::vector<std::string> argv = {"tests/celery/test_worker",
                                   "--broker=" + broker_url_,
                                   "--hostname=" + name_ + "@%h", "--loglevel=info"};
  argv.insert(argv.end(), flags_.begin(), flags_.end());
  absl::StatusOr<Child> child = Child::Start(argv, log_);
  if (!child.ok()) return child.status();
  child_ = *std::move(child);
  if (!WaitFor([this] { return Log().find(" ready.") != std::string::npos; },
               absl::Seconds(20))) {
    return absl::UnavailableError("worker did not start: " + Log());
  }
  return absl::OkStatus();
}

std::string Worker::Log() const { return ReadFile(log_); }

absl::StatusOr<nlohmann::json> Python(const std::string& command,
                                      const std::string& url,
                                      const std::vector<std::string>& args,
                                      absl::Duration timeout) {
  std::vector<std::string> argv = {"/usr/bin/python3", "tests/celery/celery_client.py",
                                   command, url};
  argv.insert(argv.end(), args.begin(), args.end());
  absl::StatusOr<std::string> out = RunCapture(argv, timeout);
  if (!out.ok()) return out.status();
  // The JSON is the last line (Celery may warn on stderr before it).
  const size_t start = out->rfind('\n', out->size() - 2);
  nlohmann::json j = nlohmann::json::parse(
      start == std::string::npos ? *out : out->substr(start + 1), nullptr, false);
  if (j.is_discarded()) return absl::InternalError("not JSON: " + *out);
  return j;
}

int CountLines(const std::string& path) {
  const std::string text = ReadFile(path);
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace testing
}  // namespace celery
}  // namespace forkserver
