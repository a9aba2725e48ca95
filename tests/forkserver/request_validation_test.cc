// The server's request checks, case by case.

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "forkserver/request_validation.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::HasSubstr;

wire::SpawnRequest Entry() {
  wire::SpawnRequest request;
  request.set_kind(wire::SPAWN_KIND_ENTRY);
  request.set_entry("Work");
  return request;
}

wire::SpawnRequest Exec() {
  wire::SpawnRequest request;
  request.set_kind(wire::SPAWN_KIND_EXEC);
  request.mutable_exec()->set_path("/bin/true");
  request.mutable_exec()->add_argv("true");
  return request;
}

TEST(RequestValidationTest, AcceptsWellFormedRequests) {
  EXPECT_OK(ValidateSpawnRequest(Entry(), 0));
  wire::SpawnRequest with_fds = Entry();
  with_fds.add_child_fds(3);
  with_fds.add_child_fds(0);
  EXPECT_OK(ValidateSpawnRequest(with_fds, 2));
  wire::SpawnRequest memfd = Entry();
  memfd.set_arg_in_memfd(true);
  EXPECT_OK(ValidateSpawnRequest(memfd, 1));
  wire::SpawnRequest exec = Exec();
  exec.mutable_exec()->add_env("A=b");
  exec.mutable_exec()->add_env("EMPTY=");
  EXPECT_OK(ValidateSpawnRequest(exec, 0));
}

struct Bad {
  std::string name;
  wire::SpawnRequest request;
  size_t fds;
  std::string why;
};

std::vector<Bad> BadRequests() {
  std::vector<Bad> cases;
  cases.push_back({"unspecified", wire::SpawnRequest(), 0, "unknown kind"});
  {
    wire::SpawnRequest r = Entry();
    r.set_kind(static_cast<wire::SpawnKind>(42));
    cases.push_back({"unknown kind", r, 0, "unknown kind 42"});
  }
  {
    wire::SpawnRequest r = Entry();
    r.clear_entry();
    cases.push_back({"no entry", r, 0, "without an entry name"});
  }
  {
    wire::SpawnRequest r = Entry();
    r.set_entry(std::string(300, 'e'));
    cases.push_back({"long entry", r, 0, "limit 255"});
  }
  {
    wire::SpawnRequest r = Entry();
    r.set_arg("x");
    r.set_arg_in_memfd(true);
    cases.push_back({"arg twice", r, 1, "both inline and in a memfd"});
  }
  {
    wire::SpawnRequest r = Entry();
    *r.mutable_exec() = Exec().exec();
    cases.push_back({"entry with exec", r, 0, "with an exec spec"});
  }
  {
    wire::SpawnRequest r = Exec();
    r.set_entry("Work");
    cases.push_back({"exec with entry", r, 0, "entry name or argument"});
  }
  {
    wire::SpawnRequest r = Exec();
    r.mutable_exec()->set_path("bin/true");
    cases.push_back({"relative path", r, 0, "absolute"});
  }
  {
    wire::SpawnRequest r = Exec();
    r.mutable_exec()->clear_argv();
    cases.push_back({"empty argv", r, 0, "empty argv"});
  }
  {
    wire::SpawnRequest r = Exec();
    r.mutable_exec()->add_env("=value");
    cases.push_back({"env name empty", r, 0, "NAME=value"});
  }
  {
    wire::SpawnRequest r = Exec();
    r.mutable_exec()->set_cwd(std::string("/tm\0p", 5));
    cases.push_back({"NUL in cwd", r, 0, "cwd contains a NUL"});
  }
  {
    wire::SpawnRequest r = Exec();
    for (int i = 0; i < 5000; ++i) r.mutable_exec()->add_argv("a");
    cases.push_back({"huge argv", r, 0, "limit 4096"});
  }
  {
    wire::SpawnRequest r = Entry();
    r.add_child_fds(3);
    cases.push_back({"too few fds", r, 0, "names 1 descriptors but 0"});
  }
  {
    wire::SpawnRequest r = Entry();
    r.add_child_fds(-1);
    cases.push_back({"negative fd", r, 1, "outside"});
  }
  {
    wire::SpawnRequest r = Entry();
    r.add_child_fds(1 << 20);
    cases.push_back({"huge fd", r, 1, "outside"});
  }
  {
    wire::SpawnRequest r = Entry();
    r.add_child_fds(4);
    r.add_child_fds(4);
    cases.push_back({"duplicate fd", r, 2, "same child fd"});
  }
  {
    wire::SpawnRequest r = Entry();
    r.set_name(std::string("na\0me", 5));
    cases.push_back({"NUL in name", r, 0, "process name contains a NUL"});
  }
  return cases;
}

TEST(RequestValidationTest, RejectsEachMalformedRequest) {
  for (const Bad& bad : BadRequests()) {
    EXPECT_THAT(ValidateSpawnRequest(bad.request, bad.fds),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr(bad.why)))
        << bad.name;
  }
}

TEST(RequestValidationTest, HelloVersionAndParse) {
  wire::Hello hello;
  EXPECT_THAT(ValidateHello(hello, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  hello.set_version(wire::PROTOCOL_VERSION_1);
  EXPECT_OK(ValidateHello(hello, 0));
  EXPECT_THAT(ValidateHello(hello, 1),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseClientMessage("").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no known content")));
  EXPECT_THAT(ParseClientMessage("\x0a\xff").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("undecodable")));
}

}  // namespace
}  // namespace forkserver

namespace forkserver {
namespace {

// Issue 7 item 21: exec argv and env in a memfd (ExecSpec.strings_in_memfd).
TEST(RequestValidationTest, ExecStringsInAMemfd) {
  wire::SpawnRequest exec = Exec();
  exec.mutable_exec()->set_strings_in_memfd(true);
  // Inline strings as well: refused.
  EXPECT_FALSE(ValidateSpawnRequest(exec, 1).ok());
  exec.mutable_exec()->clear_argv();
  exec.mutable_exec()->clear_env();
  EXPECT_TRUE(ValidateSpawnRequest(exec, 1).ok());
  EXPECT_FALSE(ValidateSpawnRequest(exec, 0).ok()) << "the memfd is missing";
  // What the memfd holds is checked as inline strings are, with
  // execve's per-string limit.
  wire::ExecStrings strings;
  EXPECT_FALSE(ValidateExecStrings(strings.argv(), strings.env(),
                                   kMaxExecStringBytes).ok());
  strings.add_argv(std::string(100000, 'a'));
  strings.add_env("NAME=value");
  EXPECT_TRUE(ValidateExecStrings(strings.argv(), strings.env(),
                                  kMaxExecStringBytes).ok());
  strings.add_env("no equals sign");
  EXPECT_FALSE(ValidateExecStrings(strings.argv(), strings.env(),
                                   kMaxExecStringBytes).ok());
}

}  // namespace
}  // namespace forkserver
