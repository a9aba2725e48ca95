// The worker against real Redis and the real Python Celery client (see
// harness.h). Each test starts its own redis-server and workers.

#include <signal.h>

#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/celery/harness.h"

namespace forkserver {
namespace celery {
namespace testing {
namespace {

using nlohmann::json;

class CeleryWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(redis_.Start().ok()); }

  std::unique_ptr<Worker> StartWorker(const std::string& name,
                                      std::vector<std::string> flags) {
    auto w = std::make_unique<Worker>(dir_, name, redis_.url(), std::move(flags));
    absl::Status started = w->Start();
    EXPECT_TRUE(started.ok()) << started;
    return w;
  }

  // send_task for each spec; the ids.
  std::vector<std::string> Send(const json& specs) {
    absl::StatusOr<json> ids = Python("send", redis_.url(), {specs.dump()});
    EXPECT_TRUE(ids.ok()) << ids.status();
    return ids.ok() ? ids->get<std::vector<std::string>>() : std::vector<std::string>{};
  }
  std::string SendOne(const std::string& task, json args, json kwargs = json::object(),
                      json options = json::object()) {
    std::vector<std::string> ids = Send(json::array(
        {{{"task", task}, {"args", args}, {"kwargs", kwargs}, {"options", options}}}));
    return ids.empty() ? "" : ids[0];
  }
  // AsyncResult.get() for each id: {id: outcome}.
  json Get(const std::vector<std::string>& ids, double timeout = 20) {
    absl::StatusOr<json> out = Python("get", redis_.url(),
                                      {json(ids).dump(), absl::StrCat(timeout)},
                                      absl::Seconds(timeout + 60));
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : json::object();
  }
  json GetOne(const std::string& id, double timeout = 20) {
    json all = Get({id}, timeout);
    return all.contains(id) ? all[id] : json();
  }
  int64_t Redis(const std::vector<std::string>& args) {
    absl::StatusOr<std::string> out = redis_.Cli(args);
    return out.ok() ? std::atoll(out->c_str()) : -1;
  }

  TempDir dir_;
  RedisServer redis_{dir_, /*durable=*/true};
};

TEST_F(CeleryWorkerTest, SuccessWithPositionalAndKeywordArguments) {
  auto w = StartWorker("w1", {"--concurrency=2"});
  const std::string a = SendOne("forkserver.add", {2, 3});
  const std::string b = SendOne("forkserver.add", {1.5}, {{"y", 2}});
  const std::string c = SendOne("forkserver.getpid", json::array());
  json out = Get({a, b, c});
  EXPECT_EQ(out[a], (json{{"status", "SUCCESS"}, {"value", 5}}));
  EXPECT_EQ(out[b], (json{{"status", "SUCCESS"}, {"value", 3.5}}));
  EXPECT_EQ(out[c]["status"], "SUCCESS");
  EXPECT_GT(out[c]["value"].get<int>(), 0);
  EXPECT_NE(w->Log().find(absl::StrCat("Task forkserver.add[", a, "] succeeded")),
            std::string::npos);
  // Acked: nothing left in kombu's bookkeeping.
  EXPECT_EQ(Redis({"HLEN", "unacked"}), 0);
}

TEST_F(CeleryWorkerTest, TaskErrorTypeAndMessageReachPython) {
  auto w = StartWorker("w1", {"--concurrency=1"});
  json out = GetOne(SendOne("forkserver.fail", {"the disk is on fire"}));
  EXPECT_EQ(out["status"], "FAILURE");
  EXPECT_EQ(out["exc_module"], "builtins");
  EXPECT_EQ(out["exc_type"], "RuntimeError");
  EXPECT_EQ(out["str"], "the disk is on fire");
  // A missing argument is Python's TypeError.
  json missing = GetOne(SendOne("forkserver.add", {1}));
  EXPECT_EQ(missing["exc_type"], "TypeError") << missing;
}

TEST_F(CeleryWorkerTest, UnknownTaskIsNotRegistered) {
  auto w = StartWorker("w1", {"--concurrency=1"});
  json out = GetOne(SendOne("forkserver.no_such_task", {1}));
  EXPECT_EQ(out["status"], "FAILURE");
  EXPECT_EQ(out["exc_module"], "celery.exceptions");
  EXPECT_EQ(out["exc_type"], "NotRegistered");
  EXPECT_NE(out["str"].get<std::string>().find("forkserver.no_such_task"),
            std::string::npos);
  // Still serving.
  EXPECT_EQ(GetOne(SendOne("forkserver.add", {1, 1}))["value"], 2);
}

TEST_F(CeleryWorkerTest, MalformedMessagesAreRejectedNotFatal) {
  auto w = StartWorker("w1", {"--concurrency=1"});
  ASSERT_TRUE(redis_.Cli({"LPUSH", "celery", "not json at all"}).ok());
  ASSERT_TRUE(redis_.Cli({"LPUSH", "celery",
                          R"({"body": "!!!", "content-type": "application/json",
                              "headers": {"id": "bad-1", "task": "forkserver.add"},
                              "properties": {"delivery_tag": "t-bad-1",
                                             "body_encoding": "base64"}})"})
                  .ok());
  json bad = GetOne("bad-1");
  EXPECT_EQ(bad["status"], "FAILURE");
  EXPECT_EQ(bad["exc_type"], "InvalidTaskError") << bad;
  EXPECT_EQ(GetOne(SendOne("forkserver.add", {2, 2}))["value"], 4);
  EXPECT_NE(w->Log().find("Rejected a message without a delivery tag"), std::string::npos);
  EXPECT_EQ(Redis({"HLEN", "unacked"}), 0);
}

TEST_F(CeleryWorkerTest, SoftAndHardTimeLimits) {
  auto w = StartWorker("w1", {"--concurrency=2"});
  const std::string soft = SendOne("forkserver.sleep", {5}, json::object(),
                                   {{"soft_time_limit", 0.3}});
  // test.record ignores the soft limit: only the hard one stops it.
  const std::string hard = SendOne("test.record", {dir_.File("hard"), 5}, json::object(),
                                   {{"time_limit", 0.5}, {"soft_time_limit", 0.2}});
  json out = Get({soft, hard});
  EXPECT_EQ(out[soft]["exc_type"], "SoftTimeLimitExceeded") << out[soft];
  EXPECT_EQ(out[soft]["exc_module"], "billiard.exceptions");
  EXPECT_EQ(out[hard]["exc_type"], "TimeLimitExceeded") << out[hard];
  EXPECT_EQ(out[hard]["exc_args"], json::array({"0.5"}));
  // The worker's default applies to a message without limits.
  auto w2 = StartWorker("w2", {"--concurrency=1", "--queues=q2", "--time-limit=0.4"});
  std::vector<std::string> ids = Send(json::array(
      {{{"task", "test.record"}, {"args", {dir_.File("d"), 5}}, {"options", {{"queue", "q2"}}}}}));
  ASSERT_EQ(ids.size(), 1u);
  EXPECT_EQ(GetOne(ids[0])["exc_type"], "TimeLimitExceeded");
}

TEST_F(CeleryWorkerTest, PoolWorkerKilledUnderEarlyAckIsWorkerLostError) {
  auto w = StartWorker("w1", {"--concurrency=1"});
  json out = GetOne(SendOne("test.crash_once", {dir_.File("marker")}));
  EXPECT_EQ(out["status"], "FAILURE");
  EXPECT_EQ(out["exc_type"], "WorkerLostError") << out;
  EXPECT_NE(out["str"].get<std::string>().find("signal 9 (SIGKILL)"), std::string::npos);
  EXPECT_EQ(GetOne(SendOne("forkserver.add", {1, 2}))["value"], 3);  // replaced
}

TEST_F(CeleryWorkerTest, PoolWorkerKilledUnderLateAckIsRedeliveredAndDoneOnce) {
  auto w = StartWorker("w1", {"--concurrency=1", "--acks-late", "--reject-on-worker-lost"});
  const std::string id = SendOne("test.crash_once", {dir_.File("marker")});
  EXPECT_EQ(GetOne(id), (json{{"status", "SUCCESS"}, {"value", "survived"}}));
  EXPECT_NE(w->Log().find("requeued"), std::string::npos);
  // Done once: one success line, and nothing left unacked or queued.
  const std::string log = w->Log();
  const std::string line = absl::StrCat("Task test.crash_once[", id, "] succeeded");
  EXPECT_EQ(log.find(line), log.rfind(line));
  EXPECT_TRUE(WaitFor([&] { return Redis({"HLEN", "unacked"}) == 0; }, absl::Seconds(5)));
  EXPECT_EQ(Redis({"LLEN", "celery"}), 0);
}

TEST_F(CeleryWorkerTest, RevokeWithTerminateAndPing) {
  auto w = StartWorker("w1", {"--concurrency=1"});
  absl::StatusOr<json> ping = Python("ping", redis_.url(), {"2"});
  ASSERT_TRUE(ping.ok()) << ping.status();
  ASSERT_EQ(ping->size(), 1u) << *ping;
  EXPECT_EQ((*ping)[0].begin().value(), (json{{"ok", "pong"}}));
  const std::string record = dir_.File("record");
  const std::string id = SendOne("test.record", {record, 60});
  ASSERT_TRUE(WaitFor([&] { return CountLines(record) == 1; }, absl::Seconds(20)));
  const absl::Time start = absl::Now();
  ASSERT_TRUE(Python("revoke", redis_.url(), {id, "1"}).ok());
  json out = GetOne(id);
  EXPECT_EQ(out["status"], "REVOKED");
  EXPECT_EQ(out["exc_type"], "TaskRevokedError") << out;
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
  // Revoked while it waits for its eta: not run.
  const std::string waiting = SendOne("forkserver.add", {1, 1}, json::object(),
                                      {{"countdown", 60}});
  ASSERT_TRUE(Python("revoke", redis_.url(), {waiting, "0"}).ok());
  EXPECT_EQ(GetOne(waiting, 10)["exc_type"], "TaskRevokedError");
  // Revoked before it arrives: not run either.
  ASSERT_TRUE(Python("revoke", redis_.url(), {"revoked-early", "0"}).ok());
  SendOne("forkserver.add", {1, 1}, json::object(), {{"task_id", "revoked-early"}});
  EXPECT_EQ(GetOne("revoked-early", 10)["exc_type"], "TaskRevokedError");
  EXPECT_EQ(Redis({"HLEN", "unacked"}), 0);
}

TEST_F(CeleryWorkerTest, ExpiresAndEta) {
  auto w = StartWorker("w1", {"--concurrency=1"});
  // Expired by the time it may run: its eta is after its expiry.
  const std::string expiring = SendOne("forkserver.add", {1, 1}, json::object(),
                                       {{"expires", 0.5}, {"countdown", 2}});
  json expired = GetOne(expiring);
  EXPECT_EQ(expired["status"], "REVOKED");
  EXPECT_EQ(expired["exc_type"], "TaskRevokedError") << expired;
  EXPECT_NE(expired["str"].get<std::string>().find("expired"), std::string::npos);
  const absl::Time sent = absl::Now();
  const std::string eta = SendOne("forkserver.add", {2, 2}, json::object(),
                                  {{"countdown", 2}});
  EXPECT_EQ(GetOne(eta)["value"], 4);
  EXPECT_GE(absl::Now() - sent, absl::Seconds(2));
}

TEST_F(CeleryWorkerTest, WarmShutdownLosesNothing) {
  auto w = StartWorker("w1", {"--concurrency=2", "--acks-late"});
  const std::string record = dir_.File("record");
  json specs = json::array();
  for (int i = 0; i < 10; ++i) {
    specs.push_back({{"task", "test.record"}, {"args", {record, 0.5}}});
  }
  std::vector<std::string> ids = Send(specs);
  ASSERT_TRUE(WaitFor([&] { return CountLines(record) >= 2; }, absl::Seconds(20)));
  w->child().Signal(SIGTERM);
  absl::StatusOr<int> code = w->child().Wait(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << w->Log();
  EXPECT_EQ(*code, 0) << w->Log();
  EXPECT_EQ(Redis({"HLEN", "unacked"}), 0) << "everything settled at exit";
  auto w2 = StartWorker("w2", {"--concurrency=2", "--acks-late"});
  json out = Get(ids);
  for (const std::string& id : ids) EXPECT_EQ(out[id]["status"], "SUCCESS") << id;
  // No task ran twice.
  EXPECT_EQ(CountLines(record), 10);
}

TEST_F(CeleryWorkerTest, ColdShutdownUnderAcksLateLosesNothing) {
  auto w = StartWorker("w1", {"--concurrency=2", "--acks-late"});
  const std::string record = dir_.File("record");
  json specs = json::array();
  for (int i = 0; i < 8; ++i) specs.push_back({{"task", "test.record"}, {"args", {record, 30}}});
  std::vector<std::string> ids = Send(specs);
  ASSERT_TRUE(WaitFor([&] { return CountLines(record) >= 2; }, absl::Seconds(20)));
  w->child().Signal(SIGQUIT);  // cold: the 30 s tasks are terminated
  absl::StatusOr<int> code = w->child().Wait(absl::Seconds(20));
  ASSERT_TRUE(code.ok()) << w->Log();
  EXPECT_EQ(*code, 0) << w->Log();
  EXPECT_EQ(Redis({"HLEN", "unacked"}), 0) << "everything put back at exit";
  EXPECT_EQ(Redis({"LLEN", "celery"}), 8);
  // Nothing was recorded as failed: a second worker runs all of them.
  ASSERT_TRUE(redis_.Cli({"DEL", "celery"}).ok());  // (too slow to wait for)
  for (const std::string& id : ids) {
    EXPECT_EQ(Redis({"EXISTS", "celery-task-meta-" + id}), 0) << id;
  }
}

TEST_F(CeleryWorkerTest, KilledWorkersTasksAreFinishedBySecondWorker) {
  const std::vector<std::string> flags = {"--concurrency=2", "--acks-late",
                                          "--prefetch-multiplier=2",
                                          "--visibility-timeout=3"};
  auto a = StartWorker("a", flags);
  const std::string record = dir_.File("record");
  json specs = json::array();
  for (int i = 0; i < 6; ++i) specs.push_back({{"task", "test.record"}, {"args", {record, 1}}});
  std::vector<std::string> ids = Send(specs);
  ASSERT_TRUE(WaitFor([&] { return CountLines(record) >= 2; }, absl::Seconds(20)));
  a->child().Kill();  // SIGKILL, mid-task, with messages prefetched
  const absl::Time killed = absl::Now();
  auto b = StartWorker("b", flags);
  json out = Get(ids, 30);
  for (const std::string& id : ids) EXPECT_EQ(out[id]["status"], "SUCCESS") << id;
  // Bound: visibility timeout + restore interval + the tasks themselves.
  EXPECT_LT(absl::Now() - killed, absl::Seconds(15));
  EXPECT_NE(b->Log().find("Restored"), std::string::npos) << b->Log();
  EXPECT_TRUE(WaitFor([&] { return Redis({"HLEN", "unacked"}) == 0; }, absl::Seconds(5)));
}

TEST_F(CeleryWorkerTest, KilledPythonWorkersTasksAreFinishedByOurs) {
  // A mixed fleet: a Python Celery prefork worker (acks_late) is SIGKILLed
  // mid-task; ours restores its unacked messages and runs them.
  ::setenv("CELERY_TEST_BROKER", redis_.url().c_str(), 1);
  ::setenv("PYTHONPATH", "tests/celery", 1);
  absl::StatusOr<Child> python = Child::Start(
      {"/usr/bin/python3", "-m", "celery", "-A", "python_worker_app", "worker",
       "--pool=prefork", "-c", "2", "--loglevel=info", "--without-gossip",
       "--without-mingle", "--without-heartbeat", "-n", "py@%h"},
      dir_.File("python.log"));
  ASSERT_TRUE(python.ok()) << python.status();
  const std::string record = dir_.File("record");
  json specs = json::array();
  for (int i = 0; i < 6; ++i) specs.push_back({{"task", "test.record"}, {"args", {record, 1}}});
  std::vector<std::string> ids = Send(specs);
  // Killed once it holds its prefetch (2 x 2) recorded as unacked: kombu
  // itself loses a message killed between its BRPOP and its HSET, which
  // no other worker can restore.
  ASSERT_TRUE(WaitFor([&] {
    return CountLines(record) >= 2 && Redis({"HLEN", "unacked"}) == 4;
  }, absl::Seconds(30)));
  python->Kill();  // SIGKILL to its process group: the worker and its pool
  const absl::Time killed = absl::Now();
  auto ours = StartWorker("ours", {"--concurrency=2", "--acks-late",
                                   "--visibility-timeout=3"});
  json out = Get(ids, 30);
  for (const std::string& id : ids) EXPECT_EQ(out[id]["status"], "SUCCESS") << id;
  EXPECT_LT(absl::Now() - killed, absl::Seconds(20));
  EXPECT_NE(ours->Log().find("Restored"), std::string::npos) << ours->Log();
}

TEST_F(CeleryWorkerTest, MaxTasksPerChildRecyclesPoolProcesses) {
  auto w = StartWorker("w1", {"--concurrency=1", "--max-tasks-per-child=1"});
  const json first = GetOne(SendOne("forkserver.getpid", json::array()));
  const json second = GetOne(SendOne("forkserver.getpid", json::array()));
  ASSERT_EQ(first["status"], "SUCCESS");
  ASSERT_EQ(second["status"], "SUCCESS");
  EXPECT_NE(first["value"], second["value"]) << "a process ran two tasks";
}

TEST_F(CeleryWorkerTest, BrokerRestartedMidRun) {
  // Data for the restarted server to load, as a production broker has:
  // while it loads its AOF (a few hundred ms here, seconds on a loaded
  // machine) it accepts connections and answers LOADING to every command,
  // and the worker goes on finishing the tasks it holds. Without it the
  // window is tiny and the test rarely meets it (CI did, under load).
  ASSERT_TRUE(redis_.Cli({"EVAL", "for i = 1, 50000 do redis.call('SET', 'pad:' .. i, 'x') end",
                          "0"}).ok());
  auto w = StartWorker("w1", {"--concurrency=2", "--acks-late"});
  const std::string record = dir_.File("record");
  json specs = json::array();
  for (int i = 0; i < 40; ++i) {
    specs.push_back({{"task", "test.record"}, {"args", {record, 0.05}}});
  }
  std::vector<std::string> ids = Send(specs);
  ASSERT_TRUE(WaitFor([&] { return Redis({"LLEN", "celery"}) < 36; }, absl::Seconds(20)));
  const absl::Status restarted = redis_.Restart();  // SIGKILL; the AOF keeps every write
  ASSERT_TRUE(restarted.ok()) << restarted;
  json out = Get(ids, 30);
  for (const std::string& id : ids) EXPECT_EQ(out[id]["status"], "SUCCESS") << id;
  EXPECT_TRUE(WaitFor([&] { return Redis({"HLEN", "unacked"}) == 0; }, absl::Seconds(10)))
      << w->Log();
  EXPECT_EQ(Redis({"LLEN", "celery"}), 0);
  // Each ran exactly once: nothing lost, and nothing this worker held
  // across the outage was redelivered and run again.
  EXPECT_EQ(CountLines(record), 40) << w->Log();
  EXPECT_NE(w->Log().find("Trying again"), std::string::npos) << w->Log();
}

TEST_F(CeleryWorkerTest, ThousandTasksFromTwoProducersOverTwoWorkers) {
  auto w1 = StartWorker("w1", {"--concurrency=2"});
  auto w2 = StartWorker("w2", {"--concurrency=2", "--acks-late"});
  absl::StatusOr<json> first, second;
  std::thread p1([&] { first = Python("produce", redis_.url(), {"500", "0"}); });
  std::thread p2([&] { second = Python("produce", redis_.url(), {"500", "500"}); });
  p1.join();
  p2.join();
  ASSERT_TRUE(first.ok() && second.ok());
  std::vector<std::string> ids = first->get<std::vector<std::string>>();
  for (const std::string& id : second->get<std::vector<std::string>>()) ids.push_back(id);
  ASSERT_EQ(ids.size(), 1000u);
  json out = Get(ids, 30);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(out[ids[i]], (json{{"status", "SUCCESS"}, {"value", 1000 + 2 * i}})) << i;
  }
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 1000u);
  EXPECT_NE(w1->Log().find("succeeded"), std::string::npos);
  EXPECT_NE(w2->Log().find("succeeded"), std::string::npos);
  EXPECT_TRUE(WaitFor([&] { return Redis({"HLEN", "unacked"}) == 0; }, absl::Seconds(5)));
}

}  // namespace
}  // namespace testing
}  // namespace celery
}  // namespace forkserver
