// main() for every test binary: the binary is also the fork server and the
// spawned workers of its own tests, so forkserver::Init() comes first.

#include <cstdio>

#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/support/test_watchdog.h"

int main(int argc, char** argv) {
  absl::Status init = forkserver::Init(argc, argv);
  if (!init.ok()) {
    std::fprintf(stderr, "forkserver::Init: %s\n", init.ToString().c_str());
    return 1;
  }
  testing::InitGoogleTest(&argc, argv);
  forkserver::testing::InstallTestWatchdog();
  return RUN_ALL_TESTS();
}
