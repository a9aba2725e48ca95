// A program the sandbox tests run inside a sandbox; it reports what it
// saw on stdout, one "key=value" per line.
//   sandbox_probe connect PORT   connect to 127.0.0.1:PORT (errno=N)
//   sandbox_probe ifaces         the network interfaces it sees
//   sandbox_probe unshare        try unshare(CLONE_NEWUSER) (errno=N)
//   sandbox_probe ptrace         try ptrace(PTRACE_TRACEME)
//   sandbox_probe fork N         fork N children that sleep (forked=K)
//   sandbox_probe alloc MB       touch MB MiB of memory
//   sandbox_probe ids            uid/euid
//   sandbox_probe spin           burn CPU until killed

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

// Under ASan the probe runs as pid 1 of a new pid namespace, behind a
// seccomp filter and at a pids limit, where LeakSanitizer's exit-time scan
// cannot stop the world ("LeakSanitizer has encountered a fatal error",
// then a crash in abort that hung isolation_test). The probe only reports
// what it sees; leaks are checked in the tests' own processes.
extern "C" int __lsan_is_turned_off() { return 1; }

namespace {

int Connect(int port) {
  const int sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    std::printf("socket_errno=%d\n", errno);
    return 0;
  }
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int rc = connect(sock, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  std::printf("connect=%d errno=%d\n", rc, rc == 0 ? 0 : errno);
  return 0;
}

int Interfaces() {
  struct if_nameindex* names = if_nameindex();
  if (names == nullptr) return 1;
  for (struct if_nameindex* n = names; n->if_index != 0; ++n) std::printf("iface=%s\n", n->if_name);
  if_freenameindex(names);
  return 0;
}

int Fork(int count) {
  std::vector<pid_t> children;
  int error = 0;
  for (int i = 0; i < count; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      pause();
      _exit(0);
    }
    if (pid < 0) {
      error = errno;
      break;
    }
    children.push_back(pid);
  }
  std::printf("forked=%zu errno=%d\n", children.size(), error);
  std::fflush(stdout);
  for (pid_t pid : children) kill(pid, SIGKILL);
  for (pid_t pid : children) waitpid(pid, nullptr, 0);
  // _exit: under ASan, LeakSanitizer's exit-time scan needs a tracer
  // thread and /proc of this pid namespace, which a template child at its
  // pids limit may not give it ("LeakSanitizer has encountered a fatal
  // error", exit 1). What this mode reports is the line above.
  _exit(0);
}

int Alloc(long megabytes) {
  for (long i = 0; i < megabytes; ++i) {
    char* block = static_cast<char*>(std::malloc(1 << 20));
    if (block == nullptr) {
      std::printf("malloc_failed_at=%ld\n", i);
      return 1;
    }
    std::memset(block, 1, 1 << 20);
  }
  std::printf("allocated=%ld\n", megabytes);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  setvbuf(stdout, nullptr, _IONBF, 0);
  if (argc < 2) return 2;
  const char* command = argv[1];
  const long arg = argc > 2 ? std::atol(argv[2]) : 0;
  if (!std::strcmp(command, "connect")) return Connect(static_cast<int>(arg));
  if (!std::strcmp(command, "ifaces")) return Interfaces();
  if (!std::strcmp(command, "unshare")) {
    const int rc = unshare(CLONE_NEWUSER);
    std::printf("unshare=%d errno=%d\n", rc, rc == 0 ? 0 : errno);
    return 0;
  }
  if (!std::strcmp(command, "ptrace")) {
    const long rc = ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    std::printf("ptrace=%ld errno=%d\n", rc, rc == 0 ? 0 : errno);
    return 0;
  }
  if (!std::strcmp(command, "fork")) return Fork(static_cast<int>(arg));
  if (!std::strcmp(command, "alloc")) return Alloc(arg);
  if (!std::strcmp(command, "ids")) {
    std::printf("uid=%d euid=%d\n", getuid(), geteuid());
    return 0;
  }
  if (!std::strcmp(command, "spin")) {
    for (volatile unsigned long i = 0;; ++i) {
    }
  }
  return 2;
}
