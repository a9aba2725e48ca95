// File: tests/chaos/stateful_fuzzer.h
// -----------------------------------------------------------------------------
// A stateful fuzzer for the real server: it opens connections to a live
// fork server and sends *sequences* of messages (hello variants, spawn
// requests with random fields, status, garbage, empty and oversized
// packets, descriptors attached or not, premature closes, reads),
// interleaved over up to three connections. The stateless decoder fuzzer
// (tests/fuzz) sees one packet; this one sees the conversation.
//
// Its choices come from a Source: a seeded PRNG for the deterministic
// cc_test, or the libFuzzer input for the `manual` fuzz target. The
// programs it may name are short-lived (/bin/true, /bin/false, /bin/echo),
// so whatever it manages to spawn ends by itself.

#ifndef FORKSERVER_TESTS_CHAOS_STATEFUL_FUZZER_H_
#define FORKSERVER_TESTS_CHAOS_STATEFUL_FUZZER_H_

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

namespace forkserver {
namespace chaos {

class Source {
 public:
  virtual ~Source() = default;
  // A number in [0, bound).
  virtual uint64_t Below(uint64_t bound) = 0;
  // Up to `max` bytes.
  virtual std::string Bytes(size_t max) = 0;
  // No more input (the fuzzer's data ran out); a PRNG never is.
  virtual bool Exhausted() const { return false; }
};

class SeededSource : public Source {
 public:
  explicit SeededSource(uint64_t seed) : random_(seed) {}
  uint64_t Below(uint64_t bound) override;
  std::string Bytes(size_t max) override;

 private:
  std::mt19937_64 random_;
};

class BytesSource : public Source {
 public:
  BytesSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint64_t Below(uint64_t bound) override;
  std::string Bytes(size_t max) override;
  bool Exhausted() const override { return size_ == 0; }

 private:
  const uint8_t* data_;
  size_t size_;
};

struct SequenceStats {
  long messages = 0;     // packets sent
  long connections = 0;  // connections opened
  long spawned = 0;      // spawn replies received
};

// One sequence against the server at `socket`; every connection it opened
// is closed when it returns.
void RunSequence(Source& source, const std::string& socket,
                 SequenceStats* stats);

}  // namespace chaos
}  // namespace forkserver

#endif  // FORKSERVER_TESTS_CHAOS_STATEFUL_FUZZER_H_
