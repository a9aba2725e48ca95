// File: lib/registry/registry.h
// -----------------------------------------------------------------------------
// Registration of entry points, preloads and pool hooks, by name.
//
// Workers never receive code, only a name: the fork server and spawned
// workers are the application's own binary, so they find the same
// functions in the same registry. Register at namespace scope with the
// macros; registration happens during static initialisation, before main().
//
//   // Runs once in the fork server before it serves (heavy init).
//   FORKSERVER_PRELOAD(LoadModel) {
//     g_model = BuildModel();
//     return absl::OkStatus();
//   }
//
//   // A Process entry point: gets the argument bytes, returns the exit code.
//   FORKSERVER_ENTRY(Crunch, absl::string_view arg) {
//     return Crunch(g_model, arg) ? 0 : 1;
//   }
//
//   // A Pool worker's initializer (PoolOptions::initializer): runs once in
//   // each worker before its first task; an error makes the worker exit 1.
//   FORKSERVER_INITIALIZER(OpenDatabase, absl::string_view arg) { ... }
//
//   // Runs in a pool worker just before it exits (PoolOptions::on_process_exit).
//   FORKSERVER_EXIT_HOOK(FlushMetrics, pid_t pid, int exitcode) { ... }
//
// Pool tasks are registered with FORKSERVER_REGISTER_TASK (lib/task.h).
//
// Names are unique within each kind; a duplicate makes forkserver::Init()
// fail. A library that registers anything must be linked with
// `alwayslink = 1`, or the linker may drop its registrations.
//
// Where preloads run: once in the fork server; once in the application
// itself, the first time it starts a worker with the "fork" start method;
// and in every worker started with "spawn" (a fresh exec pays for its own
// initialisation). They run in name order. A preload must not leave threads
// behind: the fork server refuses to fork when it has more than one thread.

#ifndef FORKSERVER_LIB_REGISTRY_REGISTRY_H_
#define FORKSERVER_LIB_REGISTRY_REGISTRY_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace forkserver {

using EntryFunction = int (*)(absl::string_view arg);
using PreloadFunction = absl::Status (*)();
using InitializerFunction = absl::Status (*)(absl::string_view arg);
using ExitHookFunction = void (*)(pid_t pid, int exitcode);

// The registered function `name` of each kind, or nullptr.
EntryFunction FindEntry(absl::string_view name);
InitializerFunction FindInitializer(absl::string_view name);
ExitHookFunction FindExitHook(absl::string_view name);

// Every registered preload, sorted by name.
std::vector<std::pair<std::string, PreloadFunction>> RegisteredPreloads();

// OK, or INVALID_ARGUMENT naming every duplicated name.
absl::Status ValidateRegistry();

namespace internal {

enum class RegistryKind { kEntry, kPreload, kTask, kInitializer, kExitHook };

// Function pointers of every kind are stored as this type and cast back by
// the typed accessors (a round trip the standard allows).
using AnyFunction = void (*)();

void Register(RegistryKind kind, const char* name, AnyFunction function);
AnyFunction Find(RegistryKind kind, absl::string_view name);

template <RegistryKind kKind>
struct Registrar {
  template <typename Function>
  Registrar(const char* name, Function function) {
    Register(kKind, name, reinterpret_cast<AnyFunction>(function));
  }
};

}  // namespace internal
}  // namespace forkserver

#define FORKSERVER_ENTRY(name, parameter)                               \
  static int name(parameter);                                           \
  static const ::forkserver::internal::Registrar<                       \
      ::forkserver::internal::RegistryKind::kEntry>                     \
      forkserver_entry_registrar_##name(#name, &name);                  \
  static int name(parameter)

#define FORKSERVER_PRELOAD(name)                                        \
  static ::absl::Status name();                                         \
  static const ::forkserver::internal::Registrar<                       \
      ::forkserver::internal::RegistryKind::kPreload>                   \
      forkserver_preload_registrar_##name(#name, &name);                \
  static ::absl::Status name()

#define FORKSERVER_INITIALIZER(name, parameter)                         \
  static ::absl::Status name(parameter);                                \
  static const ::forkserver::internal::Registrar<                       \
      ::forkserver::internal::RegistryKind::kInitializer>               \
      forkserver_initializer_registrar_##name(#name, &name);            \
  static ::absl::Status name(parameter)

#define FORKSERVER_EXIT_HOOK(name, pid_parameter, exitcode_parameter)   \
  static void name(pid_parameter, exitcode_parameter);                  \
  static const ::forkserver::internal::Registrar<                       \
      ::forkserver::internal::RegistryKind::kExitHook>                  \
      forkserver_exit_hook_registrar_##name(#name, &name);              \
  static void name(pid_parameter, exitcode_parameter)

#endif  // FORKSERVER_LIB_REGISTRY_REGISTRY_H_
