// File: tests/celery/harness.h
// -----------------------------------------------------------------------------
// Real components for the Celery tests: a redis-server on a private Unix
// socket, our worker binary, and the Python Celery client
// (celery_client.py under /usr/bin/python3). Everything started is
// stopped by the destructors, whatever the test did.

#ifndef FORKSERVER_TESTS_CELERY_HARNESS_H_
#define FORKSERVER_TESTS_CELERY_HARNESS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

namespace forkserver {
namespace celery {
namespace testing {

// A process in its own process group, stdout and stderr to `log_path`.
class Child {
 public:
  static absl::StatusOr<Child> Start(const std::vector<std::string>& argv,
                                     const std::string& log_path);
  Child() = default;
  Child(Child&& other) noexcept { *this = std::move(other); }
  Child& operator=(Child&& other) noexcept;
  ~Child();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  void Signal(int sig) const;
  // The exit code (-N for signal N); DEADLINE_EXCEEDED if still running.
  absl::StatusOr<int> Wait(absl::Duration timeout);
  // SIGKILL to the group, then reap.
  void Kill();

 private:
  pid_t pid_ = 0;
};

// Runs argv to completion; its stdout, or an error with its stderr.
absl::StatusOr<std::string> RunCapture(const std::vector<std::string>& argv,
                                       absl::Duration timeout);

// Polls `condition` every 20 ms until true or `timeout`.
bool WaitFor(const std::function<bool()>& condition, absl::Duration timeout);

// A temporary directory under /tmp (short enough for sun_path), removed
// with its contents.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

class RedisServer {
 public:
  // `durable`: append-only file with fsync always, so a restart (even
  // after SIGKILL) keeps every acknowledged write.
  explicit RedisServer(const TempDir& dir, bool durable = false);
  absl::Status Start();
  void Kill();
  absl::Status Restart();
  std::string url() const { return "redis+socket://" + socket_; }
  // redis-cli against it; its stdout.
  absl::StatusOr<std::string> Cli(const std::vector<std::string>& args) const;

 private:
  const TempDir& dir_;
  bool durable_;
  std::string socket_;
  Child child_;
};

class Worker {
 public:
  Worker(const TempDir& dir, std::string name, std::string broker_url,
         std::vector<std::string> flags);
  absl::Status Start();
  Child& child() { return child_; }
  std::string Log() const;

 private:
  std::string name_, broker_url_, log_;
  std::vector<std::string> flags_;
  Child child_;
};

// celery_client.py `command` `url` args...: its JSON output.
absl::StatusOr<nlohmann::json> Python(const std::string& command,
                                      const std::string& url,
                                      const std::vector<std::string>& args,
                                      absl::Duration timeout = absl::Seconds(60));

// Lines in a file (0 if missing).
int CountLines(const std::string& path);

}  // namespace testing
}  // namespace celery
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_CELERY_HARNESS_H_
