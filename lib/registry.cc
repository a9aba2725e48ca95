#include "lib/registry.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace forkserver {
namespace {

// Written only by the registrars, during static initialisation (one thread,
// before main); read afterwards. Hence no lock.
struct Registry {
  std::map<std::string, EntryFunction, std::less<>> entries;
  std::map<std::string, PreloadFunction, std::less<>> preloads;
  std::vector<std::string> duplicates;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;  // Never destroyed: used at exit.
  return *registry;
}

template <typename Map, typename Function>
void Add(Map& map, const char* kind, const char* name, Function function) {
  if (!map.emplace(name, function).second) {
    GetRegistry().duplicates.push_back(absl::StrCat(kind, " '", name, "'"));
  }
}

}  // namespace

EntryFunction FindEntry(absl::string_view name) {
  const auto& entries = GetRegistry().entries;
  auto it = entries.find(name);
  return it == entries.end() ? nullptr : it->second;
}

std::vector<std::pair<std::string, PreloadFunction>> RegisteredPreloads() {
  const auto& preloads = GetRegistry().preloads;
  return {preloads.begin(), preloads.end()};
}

absl::Status ValidateRegistry() {
  const auto& duplicates = GetRegistry().duplicates;
  if (duplicates.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("registered more than once: ",
                   absl::StrJoin(duplicates, ", "),
                   " (entry, preload and task names must be unique)"));
}

namespace internal {

EntryRegistrar::EntryRegistrar(const char* name, EntryFunction function) {
  Add(GetRegistry().entries, "entry", name, function);
}

PreloadRegistrar::PreloadRegistrar(const char* name, PreloadFunction function) {
  Add(GetRegistry().preloads, "preload", name, function);
}

}  // namespace internal
}  // namespace forkserver
