// lib/celery's parsing and formatting, without Redis: bad input is an
// error value, never a crash.

#include "absl/strings/escaping.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "lib/celery/message.h"
#include "lib/celery/outcome.h"
#include "lib/celery/redis_url.h"

namespace forkserver {
namespace celery {
namespace {

using nlohmann::json;

std::string Envelope(const json& body, const json& headers) {
  return json{{"body", absl::Base64Escape(body.dump())},
              {"content-type", "application/json"},
              {"content-encoding", "utf-8"},
              {"headers", headers},
              {"properties",
               {{"delivery_tag", "tag-1"},
                {"body_encoding", "base64"},
                {"delivery_info", {{"exchange", ""}, {"routing_key", "celery"}}}}}}
      .dump();
}

TEST(RedisUrlTest, CeleryForms) {
  absl::StatusOr<RedisUrl> tcp = ParseRedisUrl("redis://:pw@example.org:6380/2");
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_EQ(tcp->host, "example.org");
  EXPECT_EQ(tcp->port, 6380);
  EXPECT_EQ(tcp->db, 2);
  EXPECT_EQ(tcp->password, "pw");
  EXPECT_EQ(tcp->display.find("pw"), std::string::npos);
  absl::StatusOr<RedisUrl> sock = ParseRedisUrl("redis+socket:///tmp/r.sock?virtual_host=1");
  ASSERT_TRUE(sock.ok()) << sock.status();
  EXPECT_EQ(sock->socket_path, "/tmp/r.sock");
  EXPECT_EQ(sock->db, 1);
  EXPECT_EQ(ParseRedisUrl("redis://localhost")->port, 6379);
  for (const char* bad : {"amqp://x", "redis://h:notaport/0", "redis://h:1/x",
                          "redis+socket://relative", ""}) {
    EXPECT_FALSE(ParseRedisUrl(bad).ok()) << bad;
  }
}

TEST(MessageTest, ProtocolTwoFields) {
  TaskMessage m = ParseTaskMessage(Envelope(
      json::array({json::array({1, 2}), {{"z", 3}}, json::object()}),
      {{"task", "forkserver.add"}, {"id", "id-1"}, {"retries", 2},
       {"timelimit", {5, 3}}, {"eta", "2030-01-02T03:04:05.250000+00:00"},
       {"expires", nullptr}, {"root_id", "r"}, {"parent_id", "p"}}));
  ASSERT_TRUE(m.error.ok()) << m.error;
  EXPECT_EQ(m.task, "forkserver.add");
  EXPECT_EQ(m.id, "id-1");
  EXPECT_EQ(m.delivery_tag, "tag-1");
  EXPECT_EQ(m.routing_key, "celery");
  EXPECT_EQ(m.args, json::array({1, 2}));
  EXPECT_EQ(m.kwargs, (json{{"z", 3}}));
  EXPECT_EQ(m.retries, 2);
  EXPECT_EQ(m.hard_time_limit, absl::Seconds(5));
  EXPECT_EQ(m.soft_time_limit, absl::Seconds(3));
  EXPECT_EQ(m.eta, absl::FromUnixMillis(1893553445250));
  EXPECT_FALSE(m.expires.has_value());
}

TEST(MessageTest, BadInputKeepsWhatItCanAndSaysWhy) {
  EXPECT_FALSE(ParseTaskMessage("not json").error.ok());
  EXPECT_FALSE(ParseTaskMessage("[1,2]").error.ok());
  // The id and tag survive a bad body, so a FAILURE can be stored.
  TaskMessage body = ParseTaskMessage(Envelope(json("not a list"),
                                               {{"task", "t"}, {"id", "id-2"}}));
  EXPECT_FALSE(body.error.ok());
  EXPECT_EQ(body.id, "id-2");
  EXPECT_EQ(body.delivery_tag, "tag-1");
  EXPECT_FALSE(ParseTaskMessage(Envelope(json::array({1, 2}), {{"task", "t"}, {"id", "i"}}))
                   .error.ok());
  EXPECT_FALSE(ParseTaskMessage(Envelope(json::array({json::array(), json::object()}),
                                         {{"task", "t"}, {"id", "i"}, {"eta", "yesterday"}}))
                   .error.ok());
  EXPECT_FALSE(ParseTaskMessage(Envelope(json::array({json::array(), json::object()}),
                                         {{"id", "i"}}))
                   .error.ok());
}

TEST(OutcomeTest, ResultMetaAsCeleryWritesIt) {
  TaskMessage m;
  m.id = "id-3";
  m.parent_id = "p";
  const json meta = json::parse(ResultMeta(m, TaskOutcome::Success(5),
                                           absl::FromUnixSeconds(1700000000)));
  EXPECT_EQ(meta["status"], "SUCCESS");
  EXPECT_EQ(meta["result"], 5);
  EXPECT_TRUE(meta["traceback"].is_null());
  EXPECT_EQ(meta["children"], json::array());
  EXPECT_EQ(meta["date_done"], "2023-11-14T22:13:20.000000");
  EXPECT_EQ(meta["parent_id"], "p");
  EXPECT_EQ(meta["task_id"], "id-3");
  const json failed = json::parse(ResultMeta(
      m, TaskOutcome::Failure("ValueError", "builtins", json::array({"bad"}), "tb"),
      absl::Now()));
  EXPECT_EQ(failed["status"], "FAILURE");
  EXPECT_EQ(failed["result"],
            (json{{"exc_type", "ValueError"}, {"exc_message", {"bad"}}, {"exc_module", "builtins"}}));
  EXPECT_EQ(failed["traceback"], "tb");
  TaskOutcome back;
  ASSERT_TRUE(TaskOutcome::FromJson(TaskOutcome::Revoked("expired").ToJson().dump(), &back).ok());
  EXPECT_EQ(back.state, "REVOKED");
  EXPECT_FALSE(TaskOutcome::FromJson("{", &back).ok());
}

}  // namespace
}  // namespace celery
}  // namespace forkserver
