#include "server/serving/variant_stats.h"

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(VariantStatsTest, RequestsExecutionsAndFailuresAreCountedOnce) {
  VariantStats s;
  RequestTiming t;
  t.total_ns = 2'000'000;
  t.queue_ns = 500'000;
  t.compute = {100'000, 1'000'000, 100'000};
  t.rows = 3;
  s.RecordSuccess(t);
  s.RecordSuccess(t);
  s.RecordExecution(6, t.compute);  // both requests shared one execution
  s.RecordFailure(absl::StatusCode::kInvalidArgument, 10'000);
  s.RecordFailure(absl::StatusCode::kInvalidArgument, 10'000);
  s.RecordFailure(absl::StatusCode::kDeadlineExceeded, 10'000);
  const StatsSnapshot snap = s.Snapshot();
  EXPECT_EQ(snap.success.count, 2u);
  EXPECT_EQ(snap.inference_count, 6u);
  EXPECT_EQ(snap.execution_count, 1u);
  EXPECT_EQ(snap.batches.at(6).compute_infer.count, 1u);
  EXPECT_EQ(snap.fail.count, 3u);
  EXPECT_EQ(snap.failures.at(absl::StatusCode::kInvalidArgument), 2u);
  EXPECT_EQ(snap.failures.at(absl::StatusCode::kDeadlineExceeded), 1u);
  EXPECT_EQ(snap.failures.count(absl::StatusCode::kInternal), 0u);
  EXPECT_EQ(snap.request_seconds.count, 2u);
  EXPECT_NEAR(snap.request_seconds.sum, 0.004, 1e-12);
  EXPECT_NEAR(snap.compute_seconds.sum, 0.0024, 1e-12);
  EXPECT_EQ(snap.batch_size.count, 1u);
  EXPECT_EQ(s.MeanComputeNs(), 1'200'000u);
  EXPECT_EQ(s.Executions(), 1u);
}

TEST(VariantStatsTest, ComparisonsAndGauges) {
  VariantStats s;
  DriftStats d;
  d.rows = 2;
  d.cosine_sum = 1.9;
  d.max_abs_error = 0.25;
  d.top1_agreements = 1;
  d.top1_disagreements = 1;
  s.RecordComparison(d);
  s.RecordComparisonDropped();
  s.AddInflight(3);
  s.AddInflight(-1);
  s.AddQueued(2);
  const StatsSnapshot snap = s.Snapshot();
  EXPECT_EQ(snap.comparisons, 1u);
  EXPECT_EQ(snap.comparison_drops, 1u);
  EXPECT_EQ(snap.top1_agreements, 1u);
  EXPECT_EQ(snap.top1_disagreements, 1u);
  EXPECT_NEAR(snap.cosine.sum, 0.95, 1e-12);
  EXPECT_EQ(snap.max_abs_error.count, 1u);
  EXPECT_EQ(snap.inflight, 2);
  EXPECT_EQ(snap.queued, 2);
}

}  // namespace
}  // namespace twinserve
