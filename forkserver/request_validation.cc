#include "forkserver/request_validation.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "lib/ipc/seqpacket.h"
#include "lib/base/status_macros.h"

namespace forkserver {
namespace {

absl::Status CheckText(absl::string_view what, absl::string_view text,
                       size_t max_bytes) {
  if (text.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is ", text.size(), " bytes long (limit ", max_bytes, ")"));
  }
  if (text.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " contains a NUL"));
  }
  return absl::OkStatus();
}

absl::Status CheckEntryRequest(const wire::SpawnRequest& request) {
  if (request.entry().empty()) {
    return absl::InvalidArgumentError("entry request without an entry name");
  }
  RETURN_IF_ERROR(CheckText("entry name", request.entry(), kMaxNameBytes));
  if (request.has_exec()) {
    return absl::InvalidArgumentError("entry request with an exec spec");
  }
  if (request.arg_in_memfd() && !request.arg().empty()) {
    return absl::InvalidArgumentError(
        "argument both inline and in a memfd");
  }
  return absl::OkStatus();
}

absl::Status CheckExecRequest(const wire::SpawnRequest& request) {
  if (!request.entry().empty() || !request.arg().empty() ||
      request.arg_in_memfd()) {
    return absl::InvalidArgumentError(
        "exec request with an entry name or argument");
  }
  if (!request.has_exec()) {
    return absl::InvalidArgumentError("exec request without an exec spec");
  }
  const wire::ExecSpec& exec = request.exec();
  RETURN_IF_ERROR(CheckText("exec path", exec.path(), 4096));
  if (exec.path().empty() || exec.path()[0] != '/') {
    return absl::InvalidArgumentError("exec path must be absolute");
  }
  if (exec.strings_in_memfd()) {
    if (!exec.argv().empty() || !exec.env().empty()) {
      return absl::InvalidArgumentError(
          "exec request with argv or env both inline and in a memfd");
    }
  } else {
    RETURN_IF_ERROR(ValidateExecStrings(exec.argv(), exec.env(),
                                        kMaxPacketBytes));
  }
  return CheckText("cwd", exec.cwd(), 4096);
}

}  // namespace

absl::Status ValidateExecStrings(
    const google::protobuf::RepeatedPtrField<std::string>& argv,
    const google::protobuf::RepeatedPtrField<std::string>& env,
    size_t max_string_bytes) {
  if (argv.empty()) {
    return absl::InvalidArgumentError("exec request with an empty argv");
  }
  if (static_cast<size_t>(argv.size()) > kMaxExecStrings ||
      static_cast<size_t>(env.size()) > kMaxExecStrings) {
    return absl::InvalidArgumentError(absl::StrCat(
        "exec request with ", argv.size(), " arguments and ", env.size(),
        " environment entries (limit ", kMaxExecStrings, " each)"));
  }
  for (const std::string& arg : argv) {
    RETURN_IF_ERROR(CheckText("an argv entry", arg, max_string_bytes));
  }
  for (const std::string& entry : env) {
    RETURN_IF_ERROR(CheckText("an environment entry", entry, max_string_bytes));
    if (entry.find('=') == std::string::npos || entry[0] == '=') {
      return absl::InvalidArgumentError(absl::StrCat(
          "environment entry '", entry.substr(0, 64),
          "' is not of the form NAME=value"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<wire::ClientMessage> ParseClientMessage(
    absl::string_view bytes) {
  wire::ClientMessage message;
  if (!message.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(
        absl::StrCat("undecodable message (", bytes.size(), " bytes)"));
  }
  if (message.msg_case() == wire::ClientMessage::MSG_NOT_SET) {
    return absl::InvalidArgumentError("message with no known content");
  }
  return message;
}

absl::Status ValidateHello(const wire::Hello& hello, size_t fd_count) {
  if (fd_count != 0) {
    return absl::InvalidArgumentError("hello with descriptors");
  }
  if (hello.version() != wire::PROTOCOL_VERSION_1) {
    return absl::FailedPreconditionError(absl::StrCat(
        "protocol version ", static_cast<int>(hello.version()),
        " is not supported; this server speaks version ",
        static_cast<int>(wire::PROTOCOL_VERSION_1)));
  }
  return absl::OkStatus();
}

absl::Status ValidateSpawnRequest(const wire::SpawnRequest& request,
                                  size_t fd_count) {
  RETURN_IF_ERROR(CheckText("process name", request.name(), kMaxNameBytes));
  switch (request.kind()) {
    case wire::SPAWN_KIND_ENTRY:
      RETURN_IF_ERROR(CheckEntryRequest(request));
      break;
    case wire::SPAWN_KIND_EXEC:
      RETURN_IF_ERROR(CheckExecRequest(request));
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "spawn request of unknown kind ", static_cast<int>(request.kind())));
  }
  if (request.survive_server() &&
      (request.has_sandbox() || !request.sandbox_text().empty())) {
    // Never a weaker promise in silence: the child is a child of its
    // template, which dies with the server, and it dies with the template.
    return absl::InvalidArgumentError(
        "survive_server with a sandbox: a sandboxed child dies with its "
        "template, which dies with the server");
  }
  const bool memfd =
      request.arg_in_memfd() || request.exec().strings_in_memfd();
  const size_t expected =
      static_cast<size_t>(request.child_fds_size()) + (memfd ? 1 : 0);
  if (expected != fd_count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spawn request names ", expected, " descriptors but ", fd_count,
        " came with it"));
  }
  std::vector<int> targets(request.child_fds().begin(),
                           request.child_fds().end());
  for (int fd : targets) {
    if (fd < 0 || fd >= kMaxChildFdNumber) {
      return absl::InvalidArgumentError(absl::StrCat(
          "child fd number ", fd, " is outside [0, ", kMaxChildFdNumber, ")"));
    }
  }
  std::sort(targets.begin(), targets.end());
  if (std::adjacent_find(targets.begin(), targets.end()) != targets.end()) {
    return absl::InvalidArgumentError(
        "two descriptors for the same child fd number");
  }
  return absl::OkStatus();
}

}  // namespace forkserver
