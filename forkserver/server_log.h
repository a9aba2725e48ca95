// File: forkserver/server_log.h
// -----------------------------------------------------------------------------
// The fork server's one log sink: lines on stderr, prefixed with
// "forkserver[<pid>]: ". Every reason a connection is closed, a reply that
// could not be sent and a failed epoll or accept call is logged here.
//
// Logging never blocks the server's single thread, whatever stderr is (a
// pipe nobody reads, a stopped terminal): Log() appends the line to a
// bounded buffer (kMaxLogBufferBytes) and writes what stderr takes without
// waiting (pwritev2 RWF_NOWAIT; where stderr does not support that, only
// when poll() says it is writable, at most PIPE_BUF at a time). A line that
// does not fit in the buffer is dropped and counted (LogLinesDropped(), in
// the status reply); once stderr takes lines again a line says how many
// were lost. The loop calls FlushLog() while LogPending().
//
// FlushStandardStreamsWithoutBlocking() replaces the usual fflush before
// fork(): the server's stdio buffers are flushed only when that cannot
// block; whatever stays buffered must be discarded in the child
// (DiscardInheritedStdioBuffers), so it is neither duplicated nor lost.
// Internal to forkserver/.

#ifndef FORKSERVER_FORKSERVER_SERVER_LOG_H_
#define FORKSERVER_FORKSERVER_SERVER_LOG_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace forkserver {
namespace server_internal {

inline constexpr size_t kMaxLogBufferBytes = 64 * 1024;

// Queues "forkserver[<pid>]: <message>\n" for stderr and writes what it can.
void Log(absl::string_view message);
// Writes what stderr takes now of the buffered lines.
void FlushLog();
// Lines are buffered, waiting for stderr.
bool LogPending();
// Lines dropped because the buffer was full, since the server started.
int64_t LogLinesDropped();

// Before fork(): flushes stdout and stderr only where that cannot block.
void FlushStandardStreamsWithoutBlocking();
// In a forked child (entry mode), before it writes anything: drops the
// stdio output it inherited from the server, still the server's to write.
void DiscardInheritedStdioBuffers();

}  // namespace server_internal
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_SERVER_LOG_H_
