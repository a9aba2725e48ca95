// A downstream binary: registers a preload and an entry, runs a worker with
// each start method, and checks what came back. Exits 0 when all is well.

#include <cstdio>
#include <string>

#include "lib/forkserver.h"

namespace {

int answer = 0;

FORKSERVER_PRELOAD(ComputeAnswer) {
  answer = 42;
  return absl::OkStatus();
}

// Exits with the preloaded answer plus the argument's length.
FORKSERVER_ENTRY(Answer, absl::string_view arg) {
  return answer + static_cast<int>(arg.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (absl::Status init = forkserver::Init(argc, argv); !init.ok()) {
    std::fprintf(stderr, "%s\n", init.ToString().c_str());
    return 1;
  }
  int failures = 0;
  for (forkserver::StartMethod method : forkserver::AllowedStartMethods()) {
    forkserver::ProcessOptions options;
    options.start_method = method;
    forkserver::Process process("Answer", "abc", options);
    absl::Status status = process.Start();
    if (status.ok()) status = process.Join();
    const std::string name(forkserver::StartMethodName(method));
    if (!status.ok() || process.exitcode() != 45) {
      std::fprintf(stderr, "%s: %s, exit code %d\n", name.c_str(),
                   status.ToString().c_str(), process.exitcode().value_or(-1));
      ++failures;
    } else {
      std::printf("%s: ok\n", name.c_str());
    }
  }
  return failures == 0 ? 0 : 1;
}
