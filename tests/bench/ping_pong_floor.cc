// The floor under the pool's round trip: a bare process-to-process ping-pong
// with no pool, no codec and no event loop, in the same run as
// //tests/bench:pool_benchmark. Three channels:
//   socketpair            8 bytes each way over an AF_UNIX SOCK_STREAM pair,
//                         blocking read/write: what the pool's channel uses
//                         today (lib/pool_core.cc);
//   futex block           a sequence word in MAP_SHARED memory, FUTEX_WAIT /
//                         FUTEX_WAKE on every message;
//   futex spin-then-block the same, but the waiter first spins for at most
//                         --spin_us (bounded, so an idle peer costs no CPU
//                         after that) and the poster only calls FUTEX_WAKE
//                         when the waiter has gone to sleep.
// Prints one JSON line per channel: {"name", "p50_us", "p99_us",
// "iterations"}; raw samples go to $BENCH_SAMPLES_DIR (bench_samples.h).
//
//   ping_pong_floor [seconds per channel, default 2] [spin_us, default 50]

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "tests/bench/bench_samples.h"

namespace forkserver {
namespace bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWarmup = 1000;
constexpr int kMinRoundTrips = 1000;

double MicrosSince(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start)
      .count();
}

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Round trips timed by the parent until `seconds` have passed (and at least
// kMinRoundTrips); `ping` sends one message and waits for the echo.
std::vector<double> Measure(double seconds, const std::function<void(uint32_t)>& ping) {
  for (uint32_t i = 1; i <= kWarmup; ++i) ping(i);
  std::vector<double> sample;
  const Clock::time_point deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(seconds));
  for (uint32_t i = kWarmup + 1;
       Clock::now() < deadline || sample.size() < kMinRoundTrips; ++i) {
    const Clock::time_point start = Clock::now();
    ping(i);
    sample.push_back(MicrosSince(start));
  }
  return sample;
}

void Report(const std::string& name, const std::vector<double>& sample) {
  DumpSamples(name, sample);
  std::printf("{\"name\": \"%s\", \"p50_us\": %.3f, \"p99_us\": %.3f, "
              "\"iterations\": %zu}\n",
              name.c_str(), QuantileOf(sample, 0.5), QuantileOf(sample, 0.99),
              sample.size());
  std::fflush(stdout);
}

void WaitChild(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

bool ReadFull(int fd, void* buf, size_t n) {
  char* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t got = ::read(fd, p, n);
    if (got <= 0) {
      if (got < 0 && errno == EINTR) continue;
      return false;
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

bool WriteFull(int fd, const void* buf, size_t n) {
  const char* p = static_cast<const char*>(buf);
  while (n > 0) {
    const ssize_t put = ::write(fd, p, n);
    if (put < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += put;
    n -= static_cast<size_t>(put);
  }
  return true;
}

void SocketPair(double seconds) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    std::perror("socketpair");
    std::exit(1);
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pair[0]);
    uint64_t message;
    while (ReadFull(pair[1], &message, sizeof message) &&
           WriteFull(pair[1], &message, sizeof message)) {
    }
    ::_exit(0);
  }
  ::close(pair[1]);
  std::vector<double> sample = Measure(seconds, [&](uint32_t i) {
    uint64_t message = i;
    if (!WriteFull(pair[0], &message, sizeof message) ||
        !ReadFull(pair[0], &message, sizeof message) || message != i) {
      std::fprintf(stderr, "socketpair ping-pong broke\n");
      std::exit(1);
    }
  });
  ::close(pair[0]);  // EOF: the child exits.
  WaitChild(pid);
  Report("floor socketpair", sample);
}

// One direction of the futex channel. `waiting` lets the poster skip
// FUTEX_WAKE while the peer is still spinning.
struct Slot {
  std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> waiting{0};
};

long Futex(std::atomic<uint32_t>* word, int op, uint32_t value) {
  // Not FUTEX_PRIVATE_FLAG: the word is shared between processes.
  return ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value,
                   nullptr, nullptr, 0);
}

void Post(Slot& slot, uint32_t value) {
  // seq_cst store, then seq_cst load of `waiting`: with the waiter's
  // seq_cst increment-then-recheck, one of the two always sees the other,
  // so a wake-up is never lost.
  slot.seq.store(value);
  if (slot.waiting.load() != 0) Futex(&slot.seq, FUTEX_WAKE, 1);
}

// Waits until the slot's sequence reaches `value` (sequences only grow);
// returns what it saw.
uint32_t WaitFor(Slot& slot, uint32_t value, double spin_us) {
  uint32_t seen = slot.seq.load(std::memory_order_acquire);
  if (seen >= value) return seen;
  if (spin_us > 0) {
    const Clock::time_point start = Clock::now();
    do {
      for (int i = 0; i < 64; ++i) {
        seen = slot.seq.load(std::memory_order_acquire);
        if (seen >= value) return seen;
        CpuRelax();
      }
    } while (MicrosSince(start) < spin_us);
  }
  slot.waiting.fetch_add(1);
  for (seen = slot.seq.load(); seen < value; seen = slot.seq.load()) {
    Futex(&slot.seq, FUTEX_WAIT, seen);  // EAGAIN if it moved on: recheck.
  }
  slot.waiting.fetch_sub(1);
  return seen;
}

void FutexPingPong(const std::string& name, double seconds, double spin_us) {
  void* shared = ::mmap(nullptr, sizeof(Slot) * 2, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) {
    std::perror("mmap");
    std::exit(1);
  }
  Slot* to_child = new (shared) Slot;
  Slot* to_parent = new (static_cast<Slot*>(shared) + 1) Slot;
  constexpr uint32_t kStop = 0xffffffff;
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (uint32_t expect = 1;; ++expect) {
      if (WaitFor(*to_child, expect, spin_us) == kStop) ::_exit(0);
      Post(*to_parent, expect);
    }
  }
  std::vector<double> sample = Measure(seconds, [&](uint32_t i) {
    Post(*to_child, i);
    WaitFor(*to_parent, i, spin_us);
  });
  Post(*to_child, kStop);
  WaitChild(pid);
  ::munmap(shared, sizeof(Slot) * 2);
  Report(name, sample);
}

}  // namespace
}  // namespace bench
}  // namespace forkserver

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
  const double spin_us = argc > 2 ? std::atof(argv[2]) : 50.0;
  using namespace forkserver::bench;
  SocketPair(seconds);
  FutexPingPong("floor futex block", seconds, 0);
  FutexPingPong("floor futex spin-then-block (spin <= " +
                    std::to_string(static_cast<int>(spin_us)) + " us)",
                seconds, spin_us);
  return 0;
}
