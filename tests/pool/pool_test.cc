// Pool basics over the start methods: results of every operation,
// callbacks, errors from tasks, misuse, options.

#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lib/forkserver.h"
#include "tests/pool/pool_fixture.h"
#include "tests/pool/pool_tasks.h"
#include "tests/support/test_util.h"

namespace forkserver {
namespace {

using ::forkserver::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

CallOptions Chunked(int chunksize) {
  CallOptions options;
  options.chunksize = chunksize;
  return options;
}

using PoolTest = testing::PoolFixture;

TEST_P(PoolTest, ApplyReturnsTheTypedResult) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(*pool->Apply<int>("Square", 7), 49);
  EXPECT_EQ(*pool->Apply<std::string>("Echo", std::string("bytes\0ok", 8)),
            std::string("bytes\0ok", 8));
  EXPECT_EQ(*pool->Apply<std::string>("Echo", "literal"), "literal");
  EXPECT_EQ(*pool->Apply<int>("Add", std::make_tuple(2, 40)), 42);
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, ProtobufMessagesInAndOut) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  testing::SquareRequest request;
  request.set_value(12);
  request.set_label("twelve");
  absl::StatusOr<testing::SquareReply> reply =
      pool->Apply<testing::SquareReply>("SquareMessage", request);
  ASSERT_OK(reply.status());
  EXPECT_EQ(reply->square(), 144);
  EXPECT_EQ(reply->label(), "twelve");
  std::vector<testing::SquareRequest> many(10);
  for (int i = 0; i < 10; ++i) many[i].set_value(i);
  absl::StatusOr<std::vector<testing::SquareReply>> replies =
      pool->Map<testing::SquareReply>("SquareMessage", many);
  ASSERT_OK(replies.status());
  for (int i = 0; i < 10; ++i) EXPECT_EQ((*replies)[i].square(), i * i);
  // A reply of the wrong type does not decode: a clear error.
  EXPECT_THAT(pool->Apply<testing::SquareReply>("Echo", "\xff\xff").status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("undecodable")));
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, MapKeepsOrderWithAnyChunking) {
  auto pool = MakePool(Options(3));
  ASSERT_NE(pool, nullptr);
  std::vector<int> inputs;
  std::vector<int> expected;
  for (int i = 0; i < 257; ++i) {
    inputs.push_back(i);
    expected.push_back(i * i);
  }
  for (std::optional<int> chunksize :
       {std::optional<int>(), std::optional<int>(1), std::optional<int>(7),
        std::optional<int>(1000)}) {
    CallOptions options;
    options.chunksize = chunksize;
    absl::StatusOr<std::vector<int>> squares =
        pool->Map<int>("Square", inputs, options);
    ASSERT_OK(squares.status());
    EXPECT_EQ(*squares, expected) << "chunksize " << chunksize.value_or(0);
  }
  absl::StatusOr<std::vector<int>> empty =
      pool->Map<int>("Square", std::vector<int>{});
  ASSERT_OK(empty.status());
  EXPECT_TRUE(empty->empty());
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, StarmapCallsMultiArgumentTasks) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  std::vector<std::tuple<int, int>> pairs = {{1, 2}, {3, 4}, {5, 6}};
  absl::StatusOr<std::vector<int>> sums = pool->Starmap<int>("Add", pairs);
  ASSERT_OK(sums.status());
  EXPECT_THAT(*sums, ElementsAre(3, 7, 11));
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, ImapYieldsInOrderAndUnorderedYieldsEverything) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  // Later items finish first: ordered must still yield in order.
  std::vector<int> sleeps = {60, 40, 20, 0};
  absl::StatusOr<ImapIterator> ordered = pool->Imap("SleepMillis", sleeps);
  ASSERT_OK(ordered.status());
  int count = 0;
  while (true) {
    absl::StatusOr<std::optional<int>> next = ordered->NextAs<int>();
    ASSERT_OK(next.status());
    if (!next->has_value()) break;
    ++count;
  }
  EXPECT_EQ(count, 4);

  std::vector<int> inputs = {1, 2, 3, 4, 5};
  CallOptions chunked;
  chunked.chunksize = 2;
  absl::StatusOr<ImapIterator> unordered =
      pool->ImapUnordered("Square", inputs, chunked);
  ASSERT_OK(unordered.status());
  std::vector<int> seen;
  while (true) {
    absl::StatusOr<std::optional<int>> next = unordered->NextAs<int>();
    ASSERT_OK(next.status());
    if (!next->has_value()) break;
    seen.push_back(**next);
  }
  EXPECT_THAT(seen, UnorderedElementsAre(1, 4, 9, 16, 25));
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, ImapItemErrorsDoNotEndTheIteration) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<ImapIterator> it = pool->Imap(
      "FailWith", std::vector<std::string>{"first", "second"});
  ASSERT_OK(it.status());
  EXPECT_THAT(it->Next().status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("first")));
  EXPECT_THAT(it->Next().status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("second")));
  absl::StatusOr<std::optional<std::string>> end = it->Next();
  ASSERT_OK(end.status());
  EXPECT_FALSE(end->has_value());
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, TaskErrorsCarryTypeMessageAndContext) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<int> failed = pool->Apply<int>("FailWith", "bad input");
  EXPECT_THAT(failed.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                        "bad input"));
  EXPECT_EQ(GetPoolError(failed.status()), PoolError::kTaskError);
  std::optional<TaskErrorInfo> info = GetTaskErrorInfo(failed.status());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->type, "absl::Status");
  EXPECT_THAT(info->context, HasSubstr("task FailWith"));
  EXPECT_THAT(info->context, HasSubstr("worker pid"));

  absl::StatusOr<int> thrown = pool->Apply<int>("ThrowRuntimeError", "boom");
  EXPECT_THAT(thrown.status(), StatusIs(absl::StatusCode::kUnknown,
                                        "std::runtime_error: boom"));
  info = GetTaskErrorInfo(thrown.status());
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->type, "std::runtime_error");
  EXPECT_EQ(info->message, "boom");
  // The worker survived its task's exception.
  EXPECT_EQ(*pool->Apply<int>("Square", 3), 9);

  // A map fails with its first failing item.
  absl::StatusOr<std::vector<int>> map = pool->Map<int>(
      "FailWith", std::vector<std::string>{"one", "two"});
  EXPECT_EQ(GetPoolError(map.status()), PoolError::kTaskError);
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, CallbacksRunAndTheirErrorsAreReportedNotFatal) {
  auto pool = MakePool(Options());
  ASSERT_NE(pool, nullptr);
  absl::Mutex mutex;
  std::vector<std::string> values;
  std::vector<absl::Status> errors;
  std::vector<pid_t> accepted_by;
  CallOptions options;
  options.callback = [&](const std::string& value) {
    absl::MutexLock lock(&mutex);
    values.push_back(value);
  };
  options.error_callback = [&](const absl::Status& error) {
    absl::MutexLock lock(&mutex);
    errors.push_back(error);
  };
  options.accept_callback = [&](pid_t pid, absl::Time when) {
    absl::MutexLock lock(&mutex);
    accepted_by.push_back(pid);
    EXPECT_LE(when, absl::Now());
  };
  absl::StatusOr<AsyncResult> ok = pool->ApplyAsync("Echo", "hi", options);
  absl::StatusOr<AsyncResult> bad = pool->ApplyAsync("FailWith", "no", options);
  ASSERT_OK(ok.status());
  ASSERT_OK(bad.status());
  ASSERT_OK(ok->Get().status());
  EXPECT_FALSE(bad->Get().ok());
  EXPECT_TRUE(ok->Successful());
  EXPECT_FALSE(bad->Successful());
  EXPECT_TRUE(ok->Accepted());
  ASSERT_EQ(ok->WorkerPids().size(), 1u);

  // Callbacks that throw: counted and logged; the pool carries on.
  CallOptions throwing;
  throwing.callback = [](const std::string&) {
    throw std::runtime_error("callback bug");
  };
  absl::StatusOr<AsyncResult> thrown = pool->ApplyAsync("Echo", "x", throwing);
  ASSERT_OK(thrown.status());
  ASSERT_OK(thrown->Get().status());
  EXPECT_EQ(*pool->Apply<int>("Square", 5), 25);
  pool->Close();
  ASSERT_OK(pool->Join());  // All callbacks have run once joined.

  absl::MutexLock lock(&mutex);
  EXPECT_THAT(values, ElementsAre("hi"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], StatusIs(absl::StatusCode::kInvalidArgument, "no"));
  EXPECT_EQ(accepted_by.size(), 2u);
  EXPECT_EQ(pool->CallbackErrors(), 1);
  EXPECT_THAT(Log(), ::testing::Contains(HasSubstr("callback bug")));
}

TEST_P(PoolTest, ResultHandleQueriesBeforeReadyAreSafe) {
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  absl::StatusOr<AsyncResult> slow = pool->ApplyAsync("SleepMillis", 300);
  ASSERT_OK(slow.status());
  EXPECT_FALSE(slow->Ready());
  EXPECT_FALSE(slow->Successful());  // Not ready: false, never a crash.
  EXPECT_FALSE(slow->Wait(absl::Milliseconds(1)));
  absl::StatusOr<std::string> early = slow->Get(absl::Milliseconds(1));
  EXPECT_THAT(early.status(), StatusIs(absl::StatusCode::kDeadlineExceeded,
                                       HasSubstr("not ready")));
  EXPECT_EQ(GetPoolError(early.status()), std::nullopt);
  EXPECT_TRUE(slow->Wait());
  EXPECT_TRUE(slow->Successful());
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, WorkersHaveStableIndices) {
  auto pool = MakePool(Options(3));
  ASSERT_NE(pool, nullptr);
  std::set<int> indices;
  for (const WorkerInfo& worker : pool->Workers()) indices.insert(worker.index);
  EXPECT_THAT(indices, ElementsAre(0, 1, 2));
  absl::StatusOr<std::vector<int>> seen =
      pool->Map<int>("WorkerIndex", std::vector<int>(60, 0),
                     Chunked(1));
  ASSERT_OK(seen.status());
  for (int index : *seen) {
    EXPECT_GE(index, 0);
    EXPECT_LT(index, 3);
  }
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, CallsOnAClosedPoolAreErrors) {
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  EXPECT_THAT(pool->Join(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                     HasSubstr("still running")));
  pool->Close();
  EXPECT_THAT(pool->ApplyAsync("Square", 1).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("closed")));
  EXPECT_THAT(pool->Map<int>("Square", std::vector<int>{1}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(pool->Grow(1), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(pool->Join());
  ASSERT_OK(pool->Join());  // Idempotent.
}

TEST_P(PoolTest, UnknownTaskIsNotFound) {
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  EXPECT_THAT(pool->ApplyAsync("NoSuchTask", 1).status(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("NoSuchTask")));
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, InvalidOptionsAreRejectedAtCreation) {
  struct Case {
    std::string name;
    std::function<void(PoolOptions&)> change;
    absl::StatusCode code;
  };
  const std::vector<Case> cases = {
      {"negative processes", [](PoolOptions& o) { o.processes = -1; },
       absl::StatusCode::kInvalidArgument},
      {"zero maxtasks", [](PoolOptions& o) { o.maxtasksperchild = 0; },
       absl::StatusCode::kInvalidArgument},
      {"negative timeout",
       [](PoolOptions& o) { o.timeout = absl::Seconds(-1); },
       absl::StatusCode::kInvalidArgument},
      {"negative max_restarts", [](PoolOptions& o) { o.max_restarts = -3; },
       absl::StatusCode::kInvalidArgument},
      {"zero restart window",
       [](PoolOptions& o) { o.max_restart_freq = absl::ZeroDuration(); },
       absl::StatusCode::kInvalidArgument},
      {"zero semaphore", [](PoolOptions& o) { o.semaphore = 0; },
       absl::StatusCode::kInvalidArgument},
      {"zero memory limit",
       [](PoolOptions& o) { o.max_memory_per_child_kib = 0; },
       absl::StatusCode::kInvalidArgument},
      {"unknown initializer", [](PoolOptions& o) { o.initializer = "Nope"; },
       absl::StatusCode::kNotFound},
      {"unknown exit hook", [](PoolOptions& o) { o.on_process_exit = "Nope"; },
       absl::StatusCode::kNotFound},
  };
  for (const Case& c : cases) {
    PoolOptions options = Options(1);
    c.change(options);
    EXPECT_THAT(Pool::Create(options).status(), StatusIs(c.code)) << c.name;
  }
  auto pool = MakePool(Options(1));
  ASSERT_NE(pool, nullptr);
  CallOptions bad_chunk;
  bad_chunk.chunksize = 0;
  EXPECT_THAT(pool->MapAsync("Square", std::vector<int>{1}, bad_chunk).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("chunksize")));
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, InitializerRunsOncePerWorker) {
  PoolOptions options = Options(2);
  options.initializer = "InitCounter";
  auto pool = MakePool(options);
  ASSERT_NE(pool, nullptr);
  EXPECT_TRUE(pool->DidStartOk());
  absl::StatusOr<std::vector<int>> runs = pool->Map<int>(
      "CountInitializerRuns", std::vector<int>(20, 0), Chunked(1));
  ASSERT_OK(runs.status());
  for (int r : *runs) EXPECT_EQ(r, 1);
  pool->Close();
  ASSERT_OK(pool->Join());
}

TEST_P(PoolTest, JoinLeavesNoDescriptorsOrThreads) {
  ASSERT_OK(GetForkServerInfo().status());  // The server's own fds, first.
  const std::vector<int> fds_before = testing::OpenFds(::getpid());
  const int threads_before = testing::ThreadCount();
  {
    auto pool = MakePool(Options(2));
    ASSERT_NE(pool, nullptr);
    ASSERT_OK(pool->Map<int>("Square", std::vector<int>{1, 2, 3}).status());
    pool->Close();
    ASSERT_OK(pool->Join());
    // Joined: the pool's channels, epoll, timers and thread are gone
    // already, before the Pool object is (billiard#282).
    EXPECT_EQ(testing::OpenFds(::getpid()), fds_before);
    EXPECT_EQ(testing::ThreadCount(), threads_before);
  }
}

INSTANTIATE_TEST_SUITE_P(StartMethods, PoolTest,
                         testing::EveryStartMethod(), testing::MethodTestName);

}  // namespace
}  // namespace forkserver
