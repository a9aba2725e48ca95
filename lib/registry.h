// File: lib/registry.h
// -----------------------------------------------------------------------------
// Registration of entry points and preload functions, by name.
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
// Names are unique across the binary; a duplicate makes forkserver::Init()
// fail. A library that defines entries or preloads must be linked with
// `alwayslink = 1`, or the linker may drop its registrations.
//
// Where preloads run: once in the fork server; once in the application
// itself, the first time it starts a worker with the "fork" start method;
// and in every worker started with "spawn" (a fresh exec pays for its own
// initialisation). They run in name order. A preload must not leave threads
// behind: the fork server refuses to fork when it has more than one thread.

#ifndef FORKSERVER_LIB_REGISTRY_H_
#define FORKSERVER_LIB_REGISTRY_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace forkserver {

using EntryFunction = int (*)(absl::string_view arg);
using PreloadFunction = absl::Status (*)();

// The registered entry point `name`, or nullptr.
EntryFunction FindEntry(absl::string_view name);

// Every registered preload, sorted by name.
std::vector<std::pair<std::string, PreloadFunction>> RegisteredPreloads();

// OK, or INVALID_ARGUMENT naming every duplicated name.
absl::Status ValidateRegistry();

namespace internal {

struct EntryRegistrar {
  EntryRegistrar(const char* name, EntryFunction function);
};
struct PreloadRegistrar {
  PreloadRegistrar(const char* name, PreloadFunction function);
};

}  // namespace internal
}  // namespace forkserver

#define FORKSERVER_ENTRY(name, parameter)                            \
  static int name(parameter);                                        \
  static const ::forkserver::internal::EntryRegistrar                \
      forkserver_entry_registrar_##name(#name, &name);               \
  static int name(parameter)

#define FORKSERVER_PRELOAD(name)                                     \
  static ::absl::Status name();                                      \
  static const ::forkserver::internal::PreloadRegistrar              \
      forkserver_preload_registrar_##name(#name, &name);             \
  static ::absl::Status name()

#endif  // FORKSERVER_LIB_REGISTRY_H_
