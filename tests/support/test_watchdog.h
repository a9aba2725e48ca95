// A per-test watchdog for every test binary that links :test_main.
//
// A test that hangs must fail fast and say where, not sit until Bazel's
// target timeout (up to an hour) and print nothing but TIMEOUT. When one
// test runs longer than its limit, the watchdog prints the test's name,
// every thread's kernel wait channel and current syscall, the process's
// children, and every thread's stack if gdb is installed, then aborts the
// binary (so Bazel reports a failure with that text in the log).
//
// It is an alarm(2), not a thread: a watchdog thread would make every
// test process multi-threaded, and the "fork" start method forks
// differently then (lib/process/start_method.h), so the tests would no
// longer see the single-threaded path. SIGALRM is the watchdog's; no test
// or library code may use it.
//
// The limit is FORKSERVER_TEST_WATCHDOG_SECONDS if set (0 disables it),
// else 300 s: twenty times the slowest test's time under ASan.

#ifndef FORKSERVER_TESTS_SUPPORT_TEST_WATCHDOG_H_
#define FORKSERVER_TESTS_SUPPORT_TEST_WATCHDOG_H_

namespace forkserver::testing {

// Appends the watchdog to gtest's listeners and installs its SIGALRM
// handler. Call after testing::InitGoogleTest, from the main thread.
void InstallTestWatchdog();

}  // namespace forkserver::testing

#endif  // FORKSERVER_TESTS_SUPPORT_TEST_WATCHDOG_H_
