#include "server/serving/scheduler.h"

#include <random>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::AddSubSignature;

using ::testing::HasSubstr;

std::shared_ptr<const Runner> AddSubRunner() {
  auto r = Runner::Load(::twinserve::testing::FixturePath("add_sub.pt"),
                        AddSubSignature(), RunnerOptions{});
  EXPECT_TRUE(r.ok()) << r.status();
  return std::move(*r);
}

struct Outcome {
  absl::Notification done;
  absl::Status status;
  ExecutionInfo info;
  std::thread::id thread;
};

Task MakeTask(int64_t rows, Outcome* o, VariantStats* stats,
              uint64_t deadline_ns = 0) {
  static std::mt19937 rng(1);
  Task t;
  t.rows = rows;
  t.inputs = {::twinserve::testing::RandomFloats("a", {rows, 4}, &rng),
              ::twinserve::testing::RandomFloats("b", {rows, 4}, &rng)};
  t.enqueue_ns = NowNs();
  t.deadline_ns = deadline_ns;
  t.done = [o, stats](absl::StatusOr<std::vector<HostTensor>> out,
                      const ExecutionInfo& info,
                      const std::vector<HostTensor>&) {
    if (stats != nullptr && info.first && out.ok()) {
      stats->RecordExecution(info.batch_rows, info.timings);
      RequestTiming t;
      t.compute = info.timings;
      stats->RecordSuccess(t);
    }
    o->status = out.status();
    o->info = info;
    o->thread = std::this_thread::get_id();
    o->done.Notify();
  };
  return t;
}

TEST(SchedulerTest, DirectRunsOnWorkersThenInlineOnceTheModelProvesTiny) {
  SchedulerFactory factory({/*worker_threads=*/1, /*inline_compute_us=*/5000});
  auto stats = std::make_shared<VariantStats>();
  auto scheduler = factory.Make("m", AddSubRunner(), stats, BatchingConfig());
  std::vector<Outcome> outcomes(12);
  for (Outcome& o : outcomes) {
    ASSERT_TRUE(scheduler->Submit(MakeTask(2, &o, stats.get())).ok());
    o.done.WaitForNotification();
    EXPECT_TRUE(o.status.ok()) << o.status;
    EXPECT_EQ(o.info.requests, 1);
    EXPECT_EQ(o.info.batch_rows, 2);
  }
  // The first eight on the worker; then add_sub's ~10 us forward is known
  // to be far below the threshold and requests run on the caller.
  EXPECT_NE(outcomes[0].thread, std::this_thread::get_id());
  EXPECT_EQ(outcomes[11].thread, std::this_thread::get_id());
}

TEST(SchedulerTest, DeadlinesAndAFullQueue) {
  SchedulerFactory factory({/*worker_threads=*/1, /*inline_compute_us=*/0});
  BatchingConfig config;
  config.queue_capacity = 1;
  auto stats = std::make_shared<VariantStats>();
  auto scheduler =
      factory.Make("model 'm' version 'fp32'", AddSubRunner(), stats, config);
  absl::Notification release;
  factory.workers()->Schedule([&] { release.WaitForNotification(); });
  while (factory.workers()->queue_size() > 0) std::this_thread::yield();
  Outcome late, refused;
  ASSERT_TRUE(
      scheduler->Submit(MakeTask(1, &late, nullptr, NowNs() + 1'000'000)).ok());
  EXPECT_EQ(stats->Snapshot().queued, 1);
  absl::Status full = scheduler->Submit(MakeTask(1, &refused, nullptr));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("model 'm' version 'fp32'"));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  release.Notify();
  late.done.WaitForNotification();
  EXPECT_EQ(late.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_FALSE(refused.done.HasBeenNotified());
  EXPECT_EQ(stats->Snapshot().queued, 0);
}

TEST(SchedulerTest, BatchingStacksRequestsAndRunsOversizedOnesAlone) {
  // Batching as configured: add_sub is too cheap for the adaptive policy
  // to wait for company.
  SchedulerFactory factory(
      {/*worker_threads=*/1, /*inline_compute_us=*/0, BatchPolicy::kFixed});
  BatchingConfig config;
  config.max_batch_size = 8;
  config.max_queue_delay_us = 100'000;
  config.preferred_batch_sizes = {4};
  auto stats = std::make_shared<VariantStats>();
  auto scheduler = factory.Make("m", AddSubRunner(), stats, config);
  std::vector<Outcome> outcomes(4);
  for (Outcome& o : outcomes) {
    ASSERT_TRUE(scheduler->Submit(MakeTask(1, &o, stats.get())).ok());
  }
  for (Outcome& o : outcomes) {
    o.done.WaitForNotification();
    EXPECT_TRUE(o.status.ok());
    EXPECT_EQ(o.info.requests, 4);
  }
  Outcome big;
  ASSERT_TRUE(scheduler->Submit(MakeTask(20, &big, stats.get())).ok());
  big.done.WaitForNotification();
  EXPECT_TRUE(big.status.ok());
  EXPECT_EQ(big.info.requests, 1);
  EXPECT_EQ(big.info.batch_rows, 20);
}

TEST(SchedulerTest, OneCostCurvePerRunnerFedByUseAndProbedOnce) {
  SchedulerFactory factory({/*worker_threads=*/1, /*inline_compute_us=*/0});
  EXPECT_GT(factory.workers()->handoff_ns(), 0u) << "measured at startup";
  std::shared_ptr<const Runner> runner = AddSubRunner();
  auto stats = std::make_shared<VariantStats>();
  auto direct = factory.Make("m", runner, stats, BatchingConfig());
  for (int i = 0; i < 3; ++i) {
    Outcome o;
    ASSERT_TRUE(direct->Submit(MakeTask(1, &o, nullptr)).ok());
    o.done.WaitForNotification();
  }
  std::shared_ptr<CostModel> costs = factory.CostsFor(runner.get(), 1);
  EXPECT_TRUE(costs->Measured(1)) << "unbatched executions feed the curve";
  // Batching: the sizes past 1 are probed on the worker.
  BatchingConfig config;
  config.max_batch_size = 8;
  config.max_queue_delay_us = 1000;
  auto batching = factory.Make("m", runner, stats, config);
  costs = factory.CostsFor(runner.get(), 8);
  for (int i = 0; i < 2000 && !costs->Measured(8); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(costs->Measured(2));
  EXPECT_TRUE(costs->Measured(4));
  EXPECT_TRUE(costs->Measured(8));
  EXPECT_FALSE(costs->Measured(3));
  // Republished with other settings, the servable keeps its curve.
  batching.reset();
  config.max_batch_size = 4;
  batching = factory.Make("m", runner, stats, config);
  EXPECT_EQ(factory.CostsFor(runner.get(), 4), costs);
}

TEST(SchedulerTest, ASchedulerFreedByItsOwnLastBatchGoesAway) {
  // A servable replaced while its requests wait: the tasks hold the last
  // reference to its scheduler, which is destroyed on an executor's thread
  // when the last batch completes. It must neither deadlock nor touch
  // itself afterwards (ASan runs of this test check the latter).
  SchedulerFactory factory({/*worker_threads=*/2, /*inline_compute_us=*/0});
  BatchingConfig config;
  config.max_batch_size = 4;
  config.max_queue_delay_us = 20'000;
  std::vector<Outcome> outcomes(6);
  std::weak_ptr<Scheduler> watch;
  {
    std::shared_ptr<Scheduler> scheduler = factory.Make(
        "m", AddSubRunner(), std::make_shared<VariantStats>(), config);
    watch = scheduler;
    for (Outcome& o : outcomes) {
      Task t = MakeTask(1, &o, nullptr);
      auto inner = std::move(t.done);
      t.done = [inner, keep = scheduler](
                   absl::StatusOr<std::vector<HostTensor>> out,
                   const ExecutionInfo& info,
                   const std::vector<HostTensor>& in) {
        inner(std::move(out), info, in);
      };
      ASSERT_TRUE(scheduler->Submit(std::move(t)).ok());
    }
  }  // only the waiting tasks hold it now
  for (Outcome& o : outcomes) {
    ASSERT_TRUE(o.done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    EXPECT_TRUE(o.status.ok());
  }
  for (int i = 0; i < 2000 && !watch.expired(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(watch.expired()) << "the last batch's tasks released it";
}

}  // namespace
}  // namespace twinserve
