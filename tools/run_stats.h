// forkserverctl's sandbox output: reading a --profile file into a
// CommandSpec, the kill reason line, the statistics table or JSON, and the
// templates in `status`.

#ifndef FORKSERVER_TOOLS_RUN_STATS_H_
#define FORKSERVER_TOOLS_RUN_STATS_H_

#include <string>

#include "absl/status/status.h"
#include "lib/client/remote_command.h"
#include "proto/wire.pb.h"

namespace forkserver {

// Empty path: nothing. NOT_FOUND when the file cannot be read. The text
// is sent as is: the server parses it (errors with line:col).
absl::Status ReadProfile(const std::string& path, CommandSpec& spec);

// The server labels a profile's text "profile"; say which file it was.
absl::Status NameProfile(const absl::Status& status, const std::string& path);

// "wall-time limit", "seccomp violation (ptrace)", ...
std::string KillReasonText(const wire::ExecutionStats& stats);

// To stderr: "forkserverctl: killed: REASON" when there is one; with
// `table`, the statistics (JSON with `json`).
void PrintStats(const wire::ExecutionStats& stats, bool table, bool json);

// The status reply's template lines, to stdout.
void PrintTemplates(const wire::StatusReply& status);

}  // namespace forkserver

#endif  // FORKSERVER_TOOLS_RUN_STATS_H_
