#include "lib/registry/registry.h"

#include <array>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace forkserver {
namespace {

using internal::AnyFunction;
using internal::RegistryKind;

constexpr const char* kKindNames[] = {"entry", "preload", "task",
                                      "initializer", "exit hook"};

// Written only by the registrars, during static initialisation (one thread,
// before main); read afterwards. Hence no lock.
struct Registry {
  std::array<std::map<std::string, AnyFunction, std::less<>>, 5> functions;
  std::vector<std::string> duplicates;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry;  // Never destroyed: used at exit.
  return *registry;
}

}  // namespace

namespace internal {

void Register(RegistryKind kind, const char* name, AnyFunction function) {
  Registry& registry = GetRegistry();
  const size_t index = static_cast<size_t>(kind);
  if (!registry.functions[index].emplace(name, function).second) {
    registry.duplicates.push_back(
        absl::StrCat(kKindNames[index], " '", name, "'"));
  }
}

AnyFunction Find(RegistryKind kind, absl::string_view name) {
  const auto& functions =
      GetRegistry().functions[static_cast<size_t>(kind)];
  auto it = functions.find(name);
  return it == functions.end() ? nullptr : it->second;
}

}  // namespace internal

EntryFunction FindEntry(absl::string_view name) {
  return reinterpret_cast<EntryFunction>(
      internal::Find(RegistryKind::kEntry, name));
}

InitializerFunction FindInitializer(absl::string_view name) {
  return reinterpret_cast<InitializerFunction>(
      internal::Find(RegistryKind::kInitializer, name));
}

ExitHookFunction FindExitHook(absl::string_view name) {
  return reinterpret_cast<ExitHookFunction>(
      internal::Find(RegistryKind::kExitHook, name));
}

std::vector<std::pair<std::string, PreloadFunction>> RegisteredPreloads() {
  std::vector<std::pair<std::string, PreloadFunction>> preloads;
  for (const auto& [name, function] :
       GetRegistry().functions[static_cast<size_t>(RegistryKind::kPreload)]) {
    preloads.emplace_back(name, reinterpret_cast<PreloadFunction>(function));
  }
  return preloads;
}

absl::Status ValidateRegistry() {
  const auto& duplicates = GetRegistry().duplicates;
  if (duplicates.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("registered more than once: ",
                   absl::StrJoin(duplicates, ", "),
                   " (names must be unique within each kind)"));
}

}  // namespace forkserver
