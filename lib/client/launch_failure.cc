#include "lib/client/launch_failure.h"

#include <cerrno>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace forkserver {
namespace {

constexpr absl::string_view kPayloadUrl =
    "type.forkserver.dev/forkserver.LaunchFailure";

}  // namespace

absl::Status WithLaunchFailure(absl::Status status, absl::string_view step,
                               int error) {
  if (status.ok() || step.empty()) return status;
  status.SetPayload(kPayloadUrl, absl::Cord(absl::StrCat(step, " ", error)));
  return status;
}

std::optional<LaunchFailure> GetLaunchFailure(const absl::Status& status) {
  auto payload = status.GetPayload(kPayloadUrl);
  if (!payload.has_value()) return std::nullopt;
  std::pair<std::string, std::string> parts =
      absl::StrSplit(std::string(*payload), absl::MaxSplits(' ', 1));
  LaunchFailure failure;
  failure.step = parts.first;
  if (!absl::SimpleAtoi(parts.second, &failure.error)) return std::nullopt;
  return failure;
}

std::optional<int> ShellExitCodeForLaunchFailure(const absl::Status& status) {
  std::optional<LaunchFailure> failure = GetLaunchFailure(status);
  if (!failure.has_value() ||
      (failure->step != kPathLookupStep && failure->step != "execve")) {
    return std::nullopt;
  }
  switch (failure->error) {
    case ENOENT:
    case ENOTDIR:
      return 127;
    case EACCES:
    case EPERM:
    case ENOEXEC:
    case ETXTBSY:
    case EISDIR:
      return 126;
  }
  return std::nullopt;
}

}  // namespace forkserver
