#include "lib/pool/task.h"

#include "absl/strings/str_cat.h"

namespace forkserver {

TaskInvoker FindTask(absl::string_view name) {
  return reinterpret_cast<TaskInvoker>(
      internal::Find(internal::RegistryKind::kTask, name));
}

namespace internal {

void AppendField(std::string& out, absl::string_view field) {
  const uint32_t length = static_cast<uint32_t>(field.size());
  for (int shift = 0; shift < 32; shift += 8) {
    out.push_back(static_cast<char>(length >> shift & 0xff));
  }
  out.append(field.data(), field.size());
}

absl::StatusOr<std::vector<absl::string_view>> SplitFields(
    absl::string_view bytes) {
  std::vector<absl::string_view> fields;
  while (!bytes.empty()) {
    if (bytes.size() < 4) {
      return absl::InvalidArgumentError("truncated field length");
    }
    uint32_t length = 0;
    for (int i = 0; i < 4; ++i) {
      length |= uint32_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
    }
    bytes.remove_prefix(4);
    if (bytes.size() < length) {
      return absl::InvalidArgumentError(absl::StrCat(
          "field of ", length, " bytes with ", bytes.size(), " left"));
    }
    fields.push_back(bytes.substr(0, length));
    bytes.remove_prefix(length);
  }
  return fields;
}

}  // namespace internal
}  // namespace forkserver
