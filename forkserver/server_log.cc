#include "forkserver/server_log.h"

#include <poll.h>
#include <stdio_ext.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace forkserver {
namespace server_internal {
namespace {

// The server is single-threaded; this state is its loop's.
struct LogSink {
  std::string pending;
  int64_t dropped = 0;
  // Dropped lines not yet owned up to in the log.
  int64_t unreported = 0;
  // stderr refused RWF_NOWAIT: fall back to poll-gated writes.
  bool no_nowait = false;
};

LogSink& Sink() {
  static LogSink* sink = new LogSink;  // Lives for the process.
  return *sink;
}

bool Writable(int fd) {
  pollfd pfd{fd, POLLOUT, 0};
  return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT);
}

// Writes a prefix of `bytes` to stderr without blocking: how much, or -1
// when nothing could be written now.
ssize_t WriteNow(LogSink& sink, absl::string_view bytes) {
  if (!sink.no_nowait) {
    iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
    ssize_t n;
    do {
      n = ::pwritev2(STDERR_FILENO, &iov, 1, -1, RWF_NOWAIT);
    } while (n < 0 && errno == EINTR);
    if (n >= 0 || errno == EAGAIN) return n;
    if (errno != EOPNOTSUPP && errno != EINVAL && errno != ENOSYS) return n;
    sink.no_nowait = true;
  }
  if (!Writable(STDERR_FILENO)) return -1;
  // At most PIPE_BUF: a pipe with room for one more buffer takes it whole.
  return ::write(STDERR_FILENO, bytes.data(),
                 std::min<size_t>(bytes.size(), PIPE_BUF));
}

std::string Line(absl::string_view message) {
  return absl::StrCat("forkserver[", ::getpid(), "]: ", message, "\n");
}

}  // namespace

void Log(absl::string_view message) {
  LogSink& sink = Sink();
  std::string line = Line(message);
  if (sink.pending.size() + line.size() > kMaxLogBufferBytes) {
    ++sink.dropped;
    ++sink.unreported;
  } else {
    sink.pending += line;
  }
  FlushLog();
}

void FlushLog() {
  LogSink& sink = Sink();
  while (!sink.pending.empty()) {
    const ssize_t n = WriteNow(sink, sink.pending);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      // stderr is closed or broken: these lines will never be written.
      const int64_t lines = std::count(sink.pending.begin(),
                                       sink.pending.end(), '\n');
      sink.dropped += lines + sink.unreported;
      sink.unreported = 0;
      sink.pending.clear();
      return;
    }
    if (n <= 0) return;  // stderr is full: keep them for later.
    sink.pending.erase(0, static_cast<size_t>(n));
  }
  if (sink.unreported > 0) {
    sink.pending = Line(absl::StrCat(
        sink.unreported, " log lines dropped: stderr was not keeping up"));
    sink.unreported = 0;
    FlushLog();
  }
}

bool LogPending() {
  const LogSink& sink = Sink();
  return !sink.pending.empty() || sink.unreported > 0;
}

int64_t LogLinesDropped() { return Sink().dropped; }

void FlushStandardStreamsWithoutBlocking() {
  for (FILE* stream : {stdout, stderr}) {
    const size_t buffered = ::__fpending(stream);
    if (buffered == 0) continue;
    if (buffered <= PIPE_BUF && Writable(::fileno(stream))) {
      std::fflush(stream);
    }
  }
}

void DiscardInheritedStdioBuffers() {
  ::__fpurge(stdout);
  ::__fpurge(stderr);
}

}  // namespace server_internal
}  // namespace forkserver
