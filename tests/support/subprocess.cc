#include "tests/support/subprocess.h"

// Boost.Process 1.81 with std::filesystem forgets two includes of its own.
#include <boost/optional.hpp>
#include <type_traits>
// clang-format off
#include <boost/asio/io_context.hpp>
#include <boost/process/v2/process.hpp>
#include <boost/process/v2/stdio.hpp>
// clang-format on

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "lib/base/unique_fd.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace testing {
namespace {

namespace bp = boost::process::v2;
using Process = bp::basic_process<boost::asio::io_context::executor_type>;

int DecodeStatus(int status) {
  return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

}  // namespace

std::string RunfilesPath(const std::string& relative) {
  char resolved[PATH_MAX];
  if (::realpath(relative.c_str(), resolved) == nullptr) return relative;
  return resolved;
}

absl::StatusOr<Output> RunProgram(const std::string& program,
                                  const std::vector<std::string>& args) {
  auto [read_end, write_end] = MakePipe();
  boost::asio::io_context context;
  bp::error_code error;
  Process process = bp::default_process_launcher()(
      context.get_executor(), error, program, args,
      bp::process_stdio{{}, write_end.get(), {}});
  write_end.reset();
  if (error) return absl::InternalError(error.message());
  Output output;
  output.stdout_text = ReadUntilEof(read_end.get(), absl::Seconds(60));
  process.wait(error);
  output.exit_code = DecodeStatus(process.native_exit_code());
  return output;
}

struct Background::Impl {
  boost::asio::io_context context;
  std::unique_ptr<Process> process;
};

Background::Background(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

absl::StatusOr<std::unique_ptr<Background>> Background::Start(
    const std::string& program, const std::vector<std::string>& args,
    int stderr_fd) {
  auto impl = std::make_unique<Impl>();
  bp::error_code error;
  impl->process = std::make_unique<Process>(bp::default_process_launcher()(
      impl->context.get_executor(), error, program, args,
      bp::process_stdio{{}, {}, stderr_fd >= 0 ? stderr_fd : STDERR_FILENO}));
  if (error) return absl::InternalError(error.message());
  return std::unique_ptr<Background>(new Background(std::move(impl)));
}

Background::~Background() = default;  // boost kills a running process.

pid_t Background::pid() const { return impl_->process->id(); }

absl::StatusOr<int> Background::Stop(int sig, absl::Duration timeout) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid(), 0)));
  ::kill(pid(), sig);
  pollfd pfd{pidfd.get(), POLLIN, 0};
  if (::poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) != 1) {
    return absl::DeadlineExceededError("did not exit in time");
  }
  bp::error_code error;
  impl_->process->wait(error);
  return DecodeStatus(impl_->process->native_exit_code());
}

}  // namespace testing
}  // namespace forkserver
