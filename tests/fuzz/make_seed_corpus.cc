// Writes the request fuzzer's seed corpus (valid and near-valid packets)
// into the directory given as argv[1]. Run by hand when the protocol
// changes: bazel run //tests/fuzz:make_seed_corpus -- $PWD/tests/fuzz/request_corpus

#include <cstdio>
#include <fstream>
#include <string>

#include "proto/wire.pb.h"

namespace {

void Write(const std::string& dir, const std::string& name, char fd_count,
           const forkserver::wire::ClientMessage& message) {
  std::ofstream out(dir + "/" + name, std::ios::binary);
  out << fd_count << message.SerializeAsString();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seed_corpus <dir>\n");
    return 2;
  }
  const std::string dir = argv[1];
  using forkserver::wire::ClientMessage;
  ClientMessage hello;
  hello.mutable_hello()->set_version(forkserver::wire::PROTOCOL_VERSION_1);
  Write(dir, "hello", 0, hello);
  ClientMessage status;
  status.mutable_status();
  Write(dir, "status", 0, status);
  ClientMessage entry;
  auto& spawn = *entry.mutable_spawn();
  spawn.set_kind(forkserver::wire::SPAWN_KIND_ENTRY);
  spawn.set_entry("Work");
  spawn.set_arg("argument bytes");
  spawn.add_child_fds(3);
  spawn.add_child_fds(7);
  spawn.set_name("worker");
  spawn.set_kill_on_disconnect(true);
  Write(dir, "spawn_entry", 2, entry);
  spawn.set_arg_in_memfd(true);
  spawn.clear_arg();
  Write(dir, "spawn_entry_memfd", 3, entry);
  ClientMessage exec;
  auto& run = *exec.mutable_spawn();
  run.set_kind(forkserver::wire::SPAWN_KIND_EXEC);
  run.mutable_exec()->set_path("/bin/echo");
  run.mutable_exec()->add_argv("echo");
  run.mutable_exec()->add_argv("hi");
  run.mutable_exec()->add_env("PATH=/usr/bin");
  run.mutable_exec()->set_cwd("/tmp");
  Write(dir, "spawn_exec", 0, exec);
  run.mutable_exec()->add_env("NOEQUALS");
  Write(dir, "spawn_exec_bad_env", 0, exec);
  return 0;
}
