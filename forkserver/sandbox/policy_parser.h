// File: forkserver/sandbox/policy_parser.h
// -----------------------------------------------------------------------------
// Reads sandbox profiles: textproto files of forkserver.sandbox.Policy
// (proto/sandbox.proto), e.g. profiles/build_action.textproto.
//
// A profile that does not parse is INVALID_ARGUMENT naming the source, the
// line and the column (1-based, where protobuf's parser stopped: just past
// the offending token), e.g. for "  pids: true" on line 3
//   "profile.textproto:3:7: Message type "forkserver.sandbox.Namespaces"
//    has no field named "pids"."
// Parsing does not validate; see policy_validator.h.

#ifndef FORKSERVER_SANDBOX_POLICY_PARSER_H_
#define FORKSERVER_SANDBOX_POLICY_PARSER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/sandbox.pb.h"

namespace forkserver {
namespace sandbox {

// source_name only labels messages.
absl::StatusOr<Policy> ParsePolicyText(absl::string_view text,
                                       absl::string_view source_name);

// NOT_FOUND / PERMISSION_DENIED when the file cannot be read.
absl::StatusOr<Policy> LoadPolicyFile(const std::string& path);

}  // namespace sandbox
}  // namespace forkserver

#endif  // FORKSERVER_SANDBOX_POLICY_PARSER_H_
