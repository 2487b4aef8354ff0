#include "server/serving/batcher.h"

#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "absl/algorithm/container.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/clock.h"
#include "server/serving/thread_pool.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::AddSubSignature;

using ::testing::HasSubstr;

HostTensor Random(const std::string& name, Shape shape, std::mt19937* rng) {
  return ::twinserve::testing::RandomFloats(name, std::move(shape), rng, -2, 2);
}

// One row of inputs for add_sub.pt.
std::vector<HostTensor> AddSubRow(std::mt19937* rng) {
  return {Random("a", {1, 4}, rng), Random("b", {1, 4}, rng)};
}

std::shared_ptr<const Runner> LoadFixture(const std::string& file,
                                          const Signature& sig) {
  auto r = Runner::Load(::twinserve::testing::FixturePath(file), sig,
                        RunnerOptions{});
  EXPECT_TRUE(r.ok()) << r.status();
  return std::move(*r);
}

Signature LinearSignature() {
  Signature s;
  s.inputs = {{"x", DataType::kFp32, {-1, 784}}};
  s.outputs = {{"y", DataType::kFp32, {-1, 10}}};
  return s;
}

// Collects what each task's callback saw.
struct Outcome {
  absl::Notification done;
  absl::Status status;
  std::vector<HostTensor> outputs;
  ExecutionInfo info;
};

Task MakeTask(std::vector<HostTensor> inputs, Outcome* outcome,
              uint64_t deadline_ns = 0) {
  Task t;
  t.rows = inputs[0].shape[0];
  t.inputs = std::move(inputs);
  t.enqueue_ns = NowNs();
  t.deadline_ns = deadline_ns;
  t.done = [outcome](absl::StatusOr<std::vector<HostTensor>> out,
                     const ExecutionInfo& info,
                     const std::vector<HostTensor>&) {
    outcome->status = out.status();
    if (out.ok()) outcome->outputs = std::move(*out);
    outcome->info = info;
    outcome->done.Notify();
  };
  return t;
}

// A batcher of `runner` on `pool` (handing every execution to a worker
// unless `inline_below_ns` says otherwise).
struct Fixture {
  Fixture(std::shared_ptr<const Runner> runner, ThreadPool* pool,
          BatchingConfig config, BatchPolicy policy = BatchPolicy::kAdaptive,
          int64_t inline_below_ns = 0)
      : stats(std::make_shared<VariantStats>()),
        costs(std::make_shared<CostModel>(std::max(1, config.max_batch_size),
                                          pool->num_threads())) {
    BatcherOptions o;
    o.config = config;
    o.max_executors = pool->num_threads();
    o.policy = policy;
    o.inline_below_ns = inline_below_ns;
    batcher = std::make_unique<Batcher>(
        "model 'm' version 'fp32'", std::move(runner), pool, stats, costs, o);
  }
  std::shared_ptr<VariantStats> stats;
  std::shared_ptr<CostModel> costs;
  std::unique_ptr<Batcher> batcher;
};

TEST(BatcherTest, StackAndSplitRoundTrip) {
  std::mt19937 rng(1);
  std::vector<Task> batch(3);
  const int rows[] = {1, 3, 2};
  for (int i = 0; i < 3; ++i) {
    batch[i].inputs = {Random("x", {rows[i], 5}, &rng)};
    batch[i].rows = rows[i];
  }
  std::vector<HostTensor> stacked = StackInputs(batch);
  ASSERT_EQ(stacked.size(), 1u);
  EXPECT_EQ(stacked[0].shape, (Shape{6, 5}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(stacked[0].data) % 64, 0u);
  auto parts = SplitOutputs(stacked, {1, 3, 2});
  ASSERT_TRUE(parts.ok());
  for (int i = 0; i < 3; ++i) {
    const HostTensor& p = (*parts)[i][0];
    EXPECT_EQ(p.shape, (Shape{rows[i], 5}));
    ASSERT_EQ(p.byte_size, batch[i].inputs[0].byte_size);
    EXPECT_EQ(std::memcmp(p.data, batch[i].inputs[0].data, p.byte_size), 0);
  }
  EXPECT_THAT(SplitOutputs(stacked, {1, 1}).status().message(),
              HasSubstr("one row per input row"));
}

// Many concurrent requests of mixed sizes, batched, give exactly what each
// gives alone (add_sub is elementwise: LibTorch is deterministic here) and
// nearly what it gives alone for a matmul (kernels may pick another
// blocking for another row count).
void CheckBatchedEqualsAlone(const std::string& file, const Signature& sig,
                             float tolerance) {
  std::shared_ptr<const Runner> runner = LoadFixture(file, sig);
  ThreadPool pool("w", 2);
  BatchingConfig config;
  config.max_batch_size = 16;
  config.max_queue_delay_us = 2000;
  Fixture f(runner, &pool, config);
  constexpr int kClients = 8, kPerClient = 25;
  std::vector<std::vector<HostTensor>> inputs(kClients * kPerClient);
  std::vector<Outcome> outcomes(inputs.size());
  std::mt19937 rng(7);
  for (auto& in : inputs) {
    const int rows = 1 + rng() % 3;
    for (const TensorSpec& s : sig.inputs) {
      in.push_back(Random(s.name, {rows, s.shape[1]}, &rng));
    }
  }
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      for (int i = c * kPerClient; i < (c + 1) * kPerClient; ++i) {
        ASSERT_TRUE(f.batcher->Enqueue(MakeTask(inputs[i], &outcomes[i])).ok());
        if (i % 5 == 0)
          std::this_thread::sleep_for(std::chrono::microseconds(300));
      }
    });
  }
  for (auto& t : clients) t.join();
  int batched = 0;
  float worst = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    outcomes[i].done.WaitForNotification();
    ASSERT_TRUE(outcomes[i].status.ok()) << outcomes[i].status;
    if (outcomes[i].info.requests > 1) ++batched;
    auto alone = runner->Run(inputs[i], nullptr);
    ASSERT_TRUE(alone.ok());
    ASSERT_EQ(alone->size(), outcomes[i].outputs.size());
    for (size_t o = 0; o < alone->size(); ++o) {
      const HostTensor& x = (*alone)[o];
      const HostTensor& y = outcomes[i].outputs[o];
      ASSERT_EQ(x.shape, y.shape);
      ASSERT_EQ(x.byte_size, y.byte_size);
      const float* a = reinterpret_cast<const float*>(x.data);
      const float* b = reinterpret_cast<const float*>(y.data);
      for (size_t k = 0; k < x.byte_size / 4; ++k) {
        worst = std::max(worst, std::abs(a[k] - b[k]));
      }
    }
  }
  std::printf(
      "%s: %d of %zu requests ran in shared batches; max |batched - "
      "alone| = %g\n",
      file.c_str(), batched, inputs.size(), worst);
  EXPECT_GT(batched, 0);
  EXPECT_LE(worst, tolerance);
  EXPECT_GT(f.costs->Estimate(1, pool.num_threads()), 0)
      << "executions feed the cost model";
}

TEST(BatcherTest, BatchedEqualsAloneBitForBitElementwise) {
  CheckBatchedEqualsAlone("add_sub.pt", AddSubSignature(), 0.0f);
}

TEST(BatcherTest, BatchedMatchesAloneForMatmul) {
  CheckBatchedEqualsAlone("linear.pt", LinearSignature(), 1e-5f);
}

// Holds the pool's only worker until released.
struct Blocker {
  explicit Blocker(ThreadPool* pool) {
    pool->Schedule([this] { release.WaitForNotification(); });
    while (pool->queue_size() > 0) std::this_thread::yield();
  }
  absl::Notification release;
};

TEST(BatcherTest, FullQueueIsRefusedAtOnce) {
  ThreadPool pool("w", 1);
  BatchingConfig config;
  config.max_batch_size = 4;
  config.queue_capacity = 3;
  Fixture f(LoadFixture("add_sub.pt", AddSubSignature()), &pool, config);
  std::mt19937 rng(3);
  // The worker is busy: requests wait in the queue.
  Blocker blocker(&pool);
  std::vector<Outcome> outcomes(4);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(
        f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &outcomes[i])).ok());
  }
  EXPECT_EQ(f.stats->Snapshot().queued, 3);
  absl::Status full =
      f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &outcomes[3]));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("queue_capacity 3"));
  EXPECT_THAT(full.message(), HasSubstr("model 'm' version 'fp32'"));
  blocker.release.Notify();
  for (int i = 0; i < 3; ++i) {
    outcomes[i].done.WaitForNotification();
    EXPECT_TRUE(outcomes[i].status.ok());
  }
  EXPECT_EQ(outcomes[0].info.requests, 3);  // they waited together
  EXPECT_FALSE(outcomes[3].done.HasBeenNotified());
  EXPECT_EQ(f.stats->Snapshot().queued, 0);
}

TEST(BatcherTest, ExpiredRequestsAreDroppedBeforeRunning) {
  ThreadPool pool("w", 1);
  BatchingConfig config;
  config.max_batch_size = 4;
  Fixture f(LoadFixture("add_sub.pt", AddSubSignature()), &pool, config);
  std::mt19937 rng(4);
  Blocker blocker(&pool);
  Outcome late, patient;
  ASSERT_TRUE(
      f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &late, NowNs() + 2'000'000))
          .ok());
  ASSERT_TRUE(f.batcher
                  ->Enqueue(MakeTask(AddSubRow(&rng), &patient,
                                     NowNs() + 60'000'000'000))
                  .ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  blocker.release.Notify();
  late.done.WaitForNotification();
  patient.done.WaitForNotification();
  EXPECT_EQ(late.status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(late.status.message(), HasSubstr("it was not run"));
  EXPECT_TRUE(patient.status.ok());
  EXPECT_EQ(patient.info.requests, 1);
}

TEST(BatcherTest, PreferredSizeDispatchesWithoutWaitingForTheDelay) {
  ThreadPool pool("w", 1);
  BatchingConfig config;
  config.max_batch_size = 8;
  config.preferred_batch_sizes = {4};
  config.max_queue_delay_us = 30'000'000;  // 30 s: never reached here
  Fixture f(LoadFixture("add_sub.pt", AddSubSignature()), &pool, config);
  std::mt19937 rng(5);
  std::vector<Outcome> outcomes(4);
  for (Outcome& o : outcomes) {
    ASSERT_TRUE(f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &o)).ok());
  }
  for (Outcome& o : outcomes) {
    ASSERT_TRUE(o.done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    EXPECT_EQ(o.info.requests, 4);
    EXPECT_EQ(o.info.batch_rows, 4);
  }
  EXPECT_EQ(
      absl::c_count_if(outcomes, [](const Outcome& o) { return o.info.first; }),
      1);
}

// Eight rows wait, two workers are free: how they are cut into executions
// follows the policy and, by default, the cost model (`curve1` and `curve2`:
// ns of rows 1..16 alone and two at once).
std::vector<int> CutsOfEight(BatchPolicy policy,
                             const std::vector<uint64_t>& curve1,
                             const std::vector<uint64_t>& curve2) {
  ThreadPool pool("w", 2);
  BatchingConfig config;
  config.max_batch_size = 16;
  config.max_queue_delay_us = 200'000;  // all 8 arrive well within it
  config.preferred_batch_sizes = {8};
  Fixture f(LoadFixture("add_sub.pt", AddSubSignature()), &pool, config,
            policy);
  for (size_t r = 0; r < curve1.size(); ++r) {
    f.costs->Observe(r + 1, 1, curve1[r]);
    f.costs->Observe(r + 1, 2, curve2[r]);
  }
  std::mt19937 rng(8);
  std::vector<Outcome> outcomes(8);
  for (Outcome& o : outcomes) {
    EXPECT_TRUE(f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &o)).ok());
  }
  std::vector<int> sizes;
  for (Outcome& o : outcomes) {
    o.done.WaitForNotification();
    if (o.info.first) sizes.push_back(o.info.requests);
  }
  std::sort(sizes.begin(), sizes.end());
  return sizes;
}

TEST(BatcherTest, TheCostModelDecidesHowWaitingRowsAreCut) {
  // Per-row cost flat, two at once as fast as one: one row per execution
  // (unbatched), on both workers.
  // Costs of tens of milliseconds: whether a row waits for company weighs
  // the saving against this machine's measured hand-off, which a loaded
  // CI machine has seen above 1 ms.
  std::vector<uint64_t> flat;
  for (int r = 1; r <= 16; ++r) flat.push_back(10'000'000ull * r);
  EXPECT_EQ(CutsOfEight(BatchPolicy::kAdaptive, flat, flat),
            std::vector<int>(8, 1));
  // Batches cheaper per row: half on each worker, which answers sooner...
  std::vector<uint64_t> economies, slow_pairs;
  for (int r = 1; r <= 16; ++r) {
    economies.push_back(10'000'000ull + 5'000'000ull * r);
    slow_pairs.push_back(3 * economies.back());
  }
  EXPECT_EQ(CutsOfEight(BatchPolicy::kAdaptive, economies, economies),
            (std::vector<int>{4, 4}));
  // ... or all in one where two executions at once slow each other 3x.
  EXPECT_EQ(CutsOfEight(BatchPolicy::kAdaptive, economies, slow_pairs),
            (std::vector<int>{8}));
  // The static policies, whatever the costs.
  EXPECT_EQ(CutsOfEight(BatchPolicy::kFixed, flat, flat),
            (std::vector<int>{8}));
  EXPECT_EQ(CutsOfEight(BatchPolicy::kSpread, economies, slow_pairs),
            (std::vector<int>{4, 4}));
}

TEST(BatcherTest, WaitsForCompanyOnlyWhereTheCostCurvePaysForIt) {
  ThreadPool pool("w", 1);
  BatchingConfig config;
  config.max_batch_size = 8;
  config.max_queue_delay_us = 30'000'000;  // 30 s: only waiting reaches it
  std::mt19937 rng(10);
  {
    // Every row costs the same at any batch size: a lone request runs at
    // once rather than wait 30 s for company that would gain nothing.
    Outcome alone;  // outlives the batcher, which drains into it
    Fixture f(LoadFixture("add_sub.pt", AddSubSignature()), &pool, config);
    for (int r = 1; r <= 8; ++r) f.costs->Observe(r, 1, 1'000'000ull * r);
    ASSERT_TRUE(f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &alone)).ok());
    EXPECT_TRUE(alone.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  {
    // Rows nearly free once batched (each row of eight saves far more than
    // any hand-off costs, even on a loaded machine): the request waits, and
    // runs with the seven that come later.
    std::vector<Outcome> outcomes(8);
    Fixture f(LoadFixture("add_sub.pt", AddSubSignature()), &pool, config);
    for (int r = 1; r <= 8; ++r) f.costs->Observe(r, 1, 1'000'000'000ull + r);
    ASSERT_TRUE(
        f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &outcomes[0])).ok());
    EXPECT_FALSE(outcomes[0].done.WaitForNotificationWithTimeout(
        absl::Milliseconds(200)));
    for (int i = 1; i < 8; ++i) {
      ASSERT_TRUE(
          f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &outcomes[i])).ok());
    }
    for (Outcome& o : outcomes) {
      ASSERT_TRUE(o.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
      EXPECT_EQ(o.info.requests, 8);
    }
  }
}

TEST(BatcherTest, ShortExecutionsRunOnTheSubmittingThread) {
  ThreadPool pool("w", 1);
  BatchingConfig config;
  config.max_batch_size = 8;
  // Anything measured is "shorter than a hand-off" here.
  Fixture f(LoadFixture("add_sub.pt", AddSubSignature()), &pool, config,
            BatchPolicy::kAdaptive, /*inline_below_ns=*/1'000'000'000'000);
  std::mt19937 rng(9);
  Outcome first;
  ASSERT_TRUE(f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &first)).ok());
  first.done.WaitForNotification();  // unmeasured: handed to the worker
  while (pool.idle_workers() < 1) std::this_thread::yield();  // it is done
  Outcome second;
  ASSERT_TRUE(f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &second)).ok());
  EXPECT_TRUE(second.done.HasBeenNotified())
      << "answered on this thread, before Enqueue returned";
  EXPECT_TRUE(second.status.ok());
}

TEST(BatcherTest, CountsWaitingRequestsInItsVariantsStats) {
  ThreadPool pool("w", 1);
  BatchingConfig config;
  config.max_batch_size = 8;
  Fixture f(LoadFixture("add_sub.pt", AddSubSignature()), &pool, config);
  std::mt19937 rng(6);
  Blocker blocker(&pool);
  std::vector<Outcome> outcomes(3);
  for (Outcome& o : outcomes) {
    ASSERT_TRUE(f.batcher->Enqueue(MakeTask(AddSubRow(&rng), &o)).ok());
  }
  EXPECT_EQ(f.stats->Snapshot().queued, 3);
  blocker.release.Notify();
  for (Outcome& o : outcomes) o.done.WaitForNotification();
  EXPECT_EQ(f.stats->Snapshot().queued, 0);
}

}  // namespace
}  // namespace twinserve
