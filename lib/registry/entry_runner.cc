#include "lib/registry/entry_runner.h"

#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <string>

namespace forkserver {

void FlushStandardStreams() {
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::fflush(stdout);
  std::fflush(stderr);
}

void RunEntryAndExit(EntryFunction entry, absl::string_view arg,
                     absl::string_view entry_name) {
  int code = 1;
  try {
    code = entry(arg);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "forkserver: entry '%s' (pid %d) threw: %s\n",
                 std::string(entry_name).c_str(), ::getpid(), e.what());
  } catch (...) {
    std::fprintf(stderr,
                 "forkserver: entry '%s' (pid %d) threw a non-std exception\n",
                 std::string(entry_name).c_str(), ::getpid());
  }
  FlushStandardStreams();
  ::_exit(code & 0xff);
}

}  // namespace forkserver
