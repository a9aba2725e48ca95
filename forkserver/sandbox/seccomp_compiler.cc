#include "forkserver/sandbox/seccomp_compiler.h"

#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace forkserver {
namespace sandbox {
namespace {

uint32_t ToScmpAction(const Seccomp::Action& action) {
  switch (action.type()) {
    case Seccomp::ALLOW:
      return SCMP_ACT_ALLOW;
    case Seccomp::ERRNO:
      return SCMP_ACT_ERRNO(static_cast<uint16_t>(action.errno_value()));
    case Seccomp::KILL_PROCESS:
      return SCMP_ACT_KILL_PROCESS;
    case Seccomp::LOG:
      return SCMP_ACT_LOG;
    default:
      // Rejected by ValidatePolicy; the strictest meaning if it slips by.
      return SCMP_ACT_KILL_PROCESS;
  }
}

struct ContextDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

absl::StatusOr<std::vector<sock_filter>> Export(scmp_filter_ctx ctx) {
  const int fd = memfd_create("forkserver-seccomp", MFD_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, "memfd_create for the seccomp program");
  std::vector<sock_filter> program;
  absl::Status status;
  struct stat info;
  if (int rc = seccomp_export_bpf(ctx, fd); rc != 0) {
    status = absl::InternalError(absl::StrCat("seccomp_export_bpf: ", std::strerror(-rc)));
  } else if (fstat(fd, &info) != 0 || info.st_size % sizeof(sock_filter) != 0) {
    status = absl::InternalError("seccomp_export_bpf wrote a partial program");
  } else {
    program.resize(static_cast<size_t>(info.st_size) / sizeof(sock_filter));
    const ssize_t n = pread(fd, program.data(), static_cast<size_t>(info.st_size), 0);
    if (n != info.st_size) status = absl::InternalError("reading back the seccomp program");
  }
  close(fd);
  if (!status.ok()) return status;
  if (program.empty() || program.size() > BPF_MAXINSNS) {
    return absl::InvalidArgumentError(
        absl::StrCat("seccomp: program of ", program.size(), " instructions"));
  }
  return program;
}

}  // namespace

absl::StatusOr<std::vector<sock_filter>> CompileSeccomp(const Seccomp& policy) {
  const uint32_t default_action = ToScmpAction(policy.default_action());
  std::unique_ptr<void, ContextDeleter> ctx(seccomp_init(default_action));
  if (ctx == nullptr) return absl::InternalError("seccomp_init failed");
  // We set no_new_privs ourselves (or not, as the policy says), and a
  // foreign-ABI syscall kills the whole process, not one thread.
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
  seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  for (int i = 0; i < policy.rules_size(); ++i) {
    const Seccomp::Rule& rule = policy.rules(i);
    const uint32_t action = ToScmpAction(rule.action());
    const int nr = seccomp_syscall_resolve_name(rule.syscall().c_str());
    if (nr == __NR_SCMP_ERROR) {
      return absl::InvalidArgumentError(
          absl::StrCat("seccomp.rules[", i, "].syscall: unknown syscall \"", rule.syscall(), "\""));
    }
    // libseccomp refuses a rule that repeats the default action.
    if (action == default_action) continue;
    if (int rc = seccomp_rule_add(ctx.get(), action, nr, 0); rc != 0) {
      return absl::InvalidArgumentError(absl::StrCat("seccomp.rules[", i, "]: libseccomp: ",
                                                     std::strerror(-rc)));
    }
  }
  return Export(ctx.get());
}

}  // namespace sandbox
}  // namespace forkserver
