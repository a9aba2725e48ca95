// libFuzzer driver of the stateful fuzzer (stateful_fuzzer.h): each input
// is one sequence against a forkserverd started once, and after each the
// daemon must be alive with its descriptors back at baseline (else
// abort(), so libFuzzer keeps the input).
//
//   bazel build --config=fuzz //tests/chaos:stateful_fuzzer
//   FORKSERVERD=$PWD/bazel-bin/tools/forkserverd \
//       bazel-bin/tests/chaos/stateful_fuzzer -max_total_time=60

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/time/clock.h"
#include "lib/client/fork_server_client.h"
#include "tests/chaos/chaos_harness.h"
#include "tests/chaos/stateful_fuzzer.h"

namespace {

std::string g_socket;
pid_t g_daemon = 0;
int g_baseline = 0;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace forkserver;
  const char* daemon = std::getenv("FORKSERVERD");
  if (daemon == nullptr) {
    std::fprintf(stderr, "set FORKSERVERD to the forkserverd binary\n");
    std::exit(2);
  }
  char templ[] = "/tmp/fsf-XXXXXX";
  if (::mkdtemp(templ) == nullptr) std::exit(2);
  g_socket = std::string(templ) + "/run/socket";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    const std::string flag = "--socket=" + g_socket;
    ::execl(daemon, daemon, flag.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  g_daemon = pid;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!internal::ConnectToSocket(g_socket).ok()) {
    if (absl::Now() > deadline) std::exit(2);
    absl::SleepFor(absl::Milliseconds(5));
  }
  // Baseline once the probe connections are gone: only the listener left.
  while (chaos::SnapshotFds(g_daemon).sockets != 1) {
    if (absl::Now() > deadline) std::exit(2);
    absl::SleepFor(absl::Milliseconds(2));
  }
  g_baseline = chaos::SnapshotFds(g_daemon).total;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace forkserver::chaos;
  BytesSource source(data, size);
  SequenceStats stats;
  RunSequence(source, g_socket, &stats);
  if (!IsRunning(g_daemon)) {
    std::fprintf(stderr, "forkserverd died\n");
    std::abort();
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (SnapshotFds(g_daemon).total != g_baseline) {
    if (absl::Now() > deadline) {
      std::fprintf(stderr, "forkserverd leaks descriptors\n");
      std::abort();
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  return 0;
}
