// File: forkserver/sandbox/cgroup_files.h
// -----------------------------------------------------------------------------
// Reading and writing one cgroup control file (cgroup.procs, memory.max,
// pids.max, memory.peak, ...): whole-file reads, one write(2) per value,
// as the kernel's cgroup files expect. Parent side only.

#ifndef FORKSERVER_FORKSERVER_SANDBOX_CGROUP_FILES_H_
#define FORKSERVER_FORKSERVER_SANDBOX_CGROUP_FILES_H_

#include <optional>
#include <string>

#include "absl/status/status.h"

namespace forkserver {
namespace sandbox {

// The file's contents, or nullopt when it cannot be read.
std::optional<std::string> ReadCgroupFile(const std::string& path);

// Writes `value` in one write(2): a cgroup file takes a value per write,
// and a short write means the kernel refused it (the errno says why).
absl::Status WriteCgroupFile(const std::string& path, const std::string& value);

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_FORKSERVER_SANDBOX_CGROUP_FILES_H_
