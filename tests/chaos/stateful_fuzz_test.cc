// The stateful fuzzer (stateful_fuzzer.h), deterministic: a seeded run of
// 2,000 sequences (400 under ASan) against a real forkserverd, and after each one the
// invariants: alive, serving, descriptors at baseline, no zombies.
// FORKSERVER_CHAOS_SEED and FORKSERVER_CHAOS_SEQUENCES change the run.

#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "lib/client/fork_server_client.h"
#include "proto/wire.pb.h"
#include "tests/support/test_util.h"
#include "tests/chaos/chaos_harness.h"
#include "tests/chaos/stateful_fuzzer.h"

namespace forkserver {
namespace chaos {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  uint64_t value;
  return text != nullptr && absl::SimpleAtoi(text, &value) ? value : fallback;
}

TEST_F(ChaosTest, StatefulFuzzerSeededSequences) {
  const uint64_t seed = EnvOr("FORKSERVER_CHAOS_SEED", 20240607);
#ifdef __SANITIZE_ADDRESS__
  // Each check's spawn forks an ASan daemon (~0.1 s): fewer sequences keep
  // the --config=asan pass of scripts/test.sh within its budget.
  constexpr uint64_t kDefaultSequences = 400;
#else
  constexpr uint64_t kDefaultSequences = 2000;
#endif
  const uint64_t sequences = EnvOr("FORKSERVER_CHAOS_SEQUENCES", kDefaultSequences);
  SequenceStats stats;
  const absl::Time start = absl::Now();
  for (uint64_t i = 0; i < sequences; ++i) {
    SeededSource source(seed + i);  // Sequence i replays alone from seed + i.
    RunSequence(source, socket_, &stats);
    GlobalFigures().bad_inputs++;
    ExpectDaemonInvariants("after sequence seed " + std::to_string(seed + i));
    if (::testing::Test::HasFailure()) {
      FAIL() << "stopped at the first failing sequence; replay it with "
                "FORKSERVER_CHAOS_SEED="
             << seed + i << " FORKSERVER_CHAOS_SEQUENCES=1";
    }
  }
  // How far the sequences got: spawns the server carried out for them
  // (beyond the invariant checks' own, one per sequence, and the warm-up).
  absl::StatusOr<internal::ServerConnection> connection =
      internal::ConnectToSocket(socket_);
  ASSERT_OK(connection.status());
  wire::ClientMessage request;
  request.mutable_status();
  absl::StatusOr<internal::ServerReply> reply = connection->Request(request);
  ASSERT_OK(reply.status());
  const wire::StatusReply& status = reply->message.status();
  const long fuzz_spawns = static_cast<long>(status.spawned_total()) -
                           static_cast<long>(sequences) - 1;
  EXPECT_GT(fuzz_spawns, 0) << "no sequence got as far as a spawn";
  std::printf("stateful fuzzer: %llu sequences, %ld packets, %ld connections, "
              "%ld spawns by the server for them, %lld connections refused, %s\n",
              static_cast<unsigned long long>(sequences), stats.messages,
              stats.connections, fuzz_spawns,
              static_cast<long long>(status.rejected_total()),
              absl::FormatDuration(absl::Now() - start).c_str());
}

}  // namespace
}  // namespace chaos
}  // namespace forkserver
