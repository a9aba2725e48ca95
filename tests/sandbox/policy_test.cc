// Profiles: the shipped ones parse, validate and compile; bad ones give
// INVALID_ARGUMENT with line and column, or naming the field.

#include <string>

#include "absl/status/status.h"
#include "forkserver/sandbox/compiled_sandbox.h"
#include "forkserver/sandbox/policy_builder.h"
#include "forkserver/sandbox/policy_parser.h"
#include "forkserver/sandbox/policy_validator.h"
#include "forkserver/sandbox/seccomp_compiler.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkserver {
namespace sandbox {
namespace {

using ::testing::HasSubstr;

absl::Status Check(const std::string& text) {
  absl::StatusOr<Policy> policy = ParsePolicyText(text, "bad.textproto");
  if (!policy.ok()) return policy.status();
  return ValidatePolicy(*policy);
}

void ExpectInvalid(const std::string& text, const std::string& message) {
  absl::Status status = Check(text);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << text;
  EXPECT_THAT(std::string(status.message()), HasSubstr(message)) << text;
}

TEST(PolicyTest, ShippedProfilesParseValidateAndCompile) {
  for (const char* path : {"profiles/default.textproto", "profiles/build_action.textproto"}) {
    absl::StatusOr<Policy> policy = LoadPolicyFile(path);
    ASSERT_TRUE(policy.ok()) << policy.status();
    EXPECT_TRUE(ValidatePolicy(*policy).ok()) << path;
    auto program = CompileSeccomp(policy->seccomp());
    ASSERT_TRUE(program.ok()) << program.status();
    EXPECT_GT(program->size(), 40u);  // Arch check plus one branch per rule.
  }
}

TEST(PolicyTest, ParseErrorHasLineAndColumn) {
  ExpectInvalid("name: \"x\"\nnamespaces {\n  pids: true\n}\n",
                "bad.textproto:3:7: Message type \"forkserver.sandbox.Namespaces\" has no field "
                "named \"pids\"");
  ExpectInvalid("seccomp { default_action { type: ALOW } }", "bad.textproto:1:39: Unknown enumeration value of \"ALOW\"");
}

TEST(PolicyTest, ErrorsNameTheField) {
  ExpectInvalid(R"pb(seccomp { default_action { type: ALLOW }
                     rules { syscall: "no_such_call" action { type: ERRNO errno_value: 1 } } })pb",
                "seccomp.rules[0].syscall: unknown syscall \"no_such_call\"");
  ExpectInvalid(R"pb(filesystem { mounts { type: TMPFS target: "/tmp" } })pb",
                "filesystem.mounts: needs namespaces.mount");
  ExpectInvalid(R"pb(namespaces { user { uid_map { inside: 0 outside: 1000 } } })pb",
                "namespaces.user.uid_map: needs namespaces.user.enabled");
  ExpectInvalid(R"pb(namespaces { hostname: "h" })pb", "namespaces.hostname: needs namespaces.uts");
  ExpectInvalid(R"pb(rlimits { name: "RLIMIT_BOGUS" })pb", "rlimits[0].name: unknown rlimit");
  ExpectInvalid(R"pb(privileges { keep_capabilities: "CAP_FLY" })pb",
                "privileges.keep_capabilities[0]: unknown capability");
  ExpectInvalid(R"pb(seccomp { })pb", "seccomp.default_action.type: unspecified");
  ExpectInvalid(R"pb(namespaces { mount: true }
                     filesystem { mounts { target: "/x" } })pb",
                "filesystem.mounts[0].type: unspecified");
  ExpectInvalid(R"pb(namespaces { mount: true }
                     filesystem { mounts { type: BIND_RO source: "/a/../etc" target: "/x" } })pb",
                "filesystem.mounts[0].source");
  ExpectInvalid(R"pb(namespaces { mount: true }
                     filesystem { mounts { type: PROC target: "/proc" } })pb",
                "PROC needs namespaces.pid");
  ExpectInvalid(R"pb(seccomp { default_action { type: ALLOW }
                     rules { syscall: "execve" action { type: KILL_PROCESS } } })pb",
                "execve and execveat must stay allowed");
}

TEST(PolicyTest, CompileRefusesAnInvalidPolicy) {
  Policy policy;
  policy.mutable_namespaces()->set_hostname("h");
  auto compiled = CompiledSandbox::Create(policy);
  EXPECT_EQ(compiled.status().code(), absl::StatusCode::kInvalidArgument);
}

// The builder makes the build_action shape field for field (seccomp and
// process aside), and validates.
TEST(PolicyTest, BuilderMatchesTheProfile) {
  absl::StatusOr<Policy> built = PolicyBuilder()
                                     .UserNamespace(UserNamespace::DEFAULT_MAP_SELF)
                                     .PidNamespace()
                                     .MountNamespace()
                                     .IpcNamespace()
                                     .UtsNamespace("sandbox")
                                     .BindReadOnly("/", "/")
                                     .Tmpfs("/tmp", 268435456)
                                     .Proc("/proc")
                                     .Dev("/dev")
                                     .Rlimit("RLIMIT_CORE", 0, 0)
                                     .Rlimit("RLIMIT_NOFILE", 1024, 4096)
                                     .Build();
  ASSERT_TRUE(built.ok()) << built.status();
  absl::StatusOr<Policy> profile = LoadPolicyFile("profiles/build_action.textproto");
  ASSERT_TRUE(profile.ok()) << profile.status();
  EXPECT_EQ(built->namespaces().SerializeAsString(), profile->namespaces().SerializeAsString());
  EXPECT_EQ(built->filesystem().SerializeAsString(), profile->filesystem().SerializeAsString());
  EXPECT_EQ(built->rlimits_size(), profile->rlimits_size());

  absl::StatusOr<Policy> bad = PolicyBuilder().Tmpfs("/tmp").Build();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("filesystem.mounts: needs namespaces.mount"));
}

TEST(PolicyTest, UnreadableFileIsNotFound) {
  EXPECT_EQ(LoadPolicyFile("/nonexistent/profile.textproto").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace sandbox
}  // namespace forkserver
