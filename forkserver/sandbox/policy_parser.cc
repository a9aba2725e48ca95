#include "forkserver/sandbox/policy_parser.h"

#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace forkserver {
namespace sandbox {
namespace {

// Keeps the first error with its position; protobuf's default collector
// only logs to stderr.
class FirstErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (!has_error_) {
      has_error_ = true;
      // The parser counts from 0; editors count from 1.
      line_ = line + 1;
      column_ = column + 1;
      message_ = message;
    }
  }
  bool has_error() const { return has_error_; }
  std::string Describe(absl::string_view source) const {
    return absl::StrCat(source, ":", line_, ":", column_, ": ", message_);
  }

 private:
  bool has_error_ = false;
  int line_ = 0;
  int column_ = 0;
  std::string message_;
};

}  // namespace

absl::StatusOr<Policy> ParsePolicyText(absl::string_view text,
                                       absl::string_view source_name) {
  Policy policy;
  FirstErrorCollector errors;
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  const bool parsed = parser.ParseFromString(std::string(text), &policy);
  if (!parsed || errors.has_error()) {
    if (!errors.has_error()) {
      return absl::InvalidArgumentError(absl::StrCat(source_name, ": does not parse"));
    }
    return absl::InvalidArgumentError(errors.Describe(source_name));
  }
  return policy;
}

absl::StatusOr<Policy> LoadPolicyFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    const int error = errno;
    const std::string message = absl::StrCat("cannot read profile ", path);
    if (error == EACCES) return absl::PermissionDeniedError(message);
    return absl::NotFoundError(message);
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  return ParsePolicyText(buffer.str(), path);
}

}  // namespace sandbox
}  // namespace forkserver
