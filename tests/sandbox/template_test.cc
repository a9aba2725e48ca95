// A template child gets the same isolation as a per-launch one: checked
// by the exit status of a shell that tests what it sees (the children
// inherit the template's stdout, so no output is compared).

#include <sys/wait.h>
#include <unistd.h>

#include "forkserver/sandbox/cgroup_manager.h"
#include "forkserver/sandbox/compiled_sandbox.h"
#include "forkserver/sandbox/policy_parser.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sandbox/sandbox_test_util.h"
#include "tests/sandbox/template_prototype.h"

namespace forkserver {
namespace sandbox {
namespace testing {
namespace {

constexpr char kChecks[] =
    "test $$ = 1 && test \"$(ls /proc | grep -c '^[0-9]')\" -le 4 &&"
    " grep -q 'CapEff:.0000000000000000' /proc/self/status &&"
    " test \"$(cat /proc/sys/kernel/hostname)\" = sandbox &&"
    " ! touch /etc/forkserver-x 2>/dev/null && test -z \"$(ls -A /tmp)\" && touch /tmp/y";

TEST(TemplateTest, ChildrenAreIsolatedAndIndependent) {
  if (std::string reason = UserNamespaceUnavailableReason(); !reason.empty()) {
    GTEST_SKIP() << "user namespaces unavailable: " << reason;
  }
  auto policy = LoadPolicyFile(ProfilePath("build_action"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto sandbox = CompiledSandbox::Create(*policy);
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  auto t = TemplatePrototype::Start(**sandbox, {"/bin/sh", "-c", kChecks}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  // Each child writes /tmp/y; the next still finds /tmp empty (its own).
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<int> status = (*t)->Launch();
    ASSERT_TRUE(status.ok()) << status.status();
    EXPECT_EQ(*status, 0) << "a check failed in template child " << i;
  }
  const bool leaked = access("/etc/forkserver-x", F_OK) == 0;
  if (leaked) unlink("/etc/forkserver-x");  // Only there if the view was writable.
  EXPECT_FALSE(leaked);
}

TEST(TemplateTest, CgroupLeafAppliesPerChild) {
  if (std::string reason = UserNamespaceUnavailableReason(); !reason.empty()) {
    GTEST_SKIP() << "user namespaces unavailable: " << reason;
  }
  auto policy = LoadPolicyFile(ProfilePath("build_action"));
  ASSERT_TRUE(policy.ok()) << policy.status();
  auto sandbox = CompiledSandbox::Create(*policy);
  ASSERT_TRUE(sandbox.ok()) << sandbox.status();
  // The cgroup leaf is per child: forking 20 at pids.max 5 hits it.
  Limits limits;
  limits.set_pids_max(5);
  auto cgroups = CgroupManager::Create(limits);
  if (!cgroups.ok()) GTEST_SKIP() << "no writable cgroups here: " << cgroups.status();
  auto t = TemplatePrototype::Start(
      **sandbox, {ProbePath(), "fork", "20"}, {});
  ASSERT_TRUE(t.ok()) << t.status();
  auto leaf = (*cgroups)->CreateLeaf(limits);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  absl::StatusOr<int> status = (*t)->Launch((*leaf)->v1_procs_fds());
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, 0);
  EXPECT_TRUE((*leaf)->PidsLimitHit());
}

}  // namespace
}  // namespace testing
}  // namespace sandbox
}  // namespace forkserver
