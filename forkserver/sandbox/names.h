// File: forkserver/sandbox/names.h
// -----------------------------------------------------------------------------
// Names used in profiles: rlimits ("RLIMIT_NOFILE" or "nofile") and
// capabilities ("CAP_SYS_ADMIN" or "sys_admin"), case-insensitive.

#ifndef FORKSERVER_SANDBOX_NAMES_H_
#define FORKSERVER_SANDBOX_NAMES_H_

#include <optional>

#include "absl/strings/string_view.h"

namespace forkserver {
namespace sandbox {

// RLIMIT_* value, or nullopt for an unknown name.
std::optional<int> RlimitFromName(absl::string_view name);

// CAP_* number, or nullopt for an unknown name.
std::optional<int> CapabilityFromName(absl::string_view name);

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_NAMES_H_
