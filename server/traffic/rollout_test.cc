#include "server/traffic/rollout.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

TrafficPolicy Rollout() {
  TrafficPolicy p;
  p.kind = PolicyKind::kRollout;
  p.candidate = "int8";
  p.steps = {10, 100};
  p.min_requests = 100;
  p.min_seconds = 5;
  p.guards.min_samples = 20;
  p.version = 4;
  return p;
}

RolloutCounters Counters(uint64_t ok, uint64_t failed, uint64_t agree,
                         uint64_t disagree) {
  RolloutCounters c;
  c.candidate_success = ok;
  c.candidate_failed = failed;
  c.agreements = agree;
  c.disagreements = disagree;
  c.cosine_sum = agree + disagree;
  c.cosine_count = agree + disagree;
  return c;
}

TEST(RolloutTest, HoldsUntilEnoughRequestsAndTimeThenAdvancesAndPromotes) {
  const RolloutCounters start = Counters(1000, 0, 500, 0);
  TrafficPolicy p = Rollout();
  EXPECT_EQ(JudgeStage(p, start, Counters(1050, 0, 550, 0), 60).kind,
            RolloutDecision::kHold);  // 50 requests at this stage
  EXPECT_EQ(JudgeStage(p, start, Counters(1200, 0, 700, 0), 1).kind,
            RolloutDecision::kHold);  // 1 s of 5
  RolloutDecision d = JudgeStage(p, start, Counters(1200, 0, 700, 0), 6);
  EXPECT_EQ(d.kind, RolloutDecision::kAdvance);
  EXPECT_EQ(d.next.stage, 1);
  EXPECT_EQ(d.actor, "rollout");
  EXPECT_THAT(d.reason, HasSubstr("next 100%"));
  p.stage = 1;
  d = JudgeStage(p, start, Counters(1200, 0, 700, 0), 6);
  EXPECT_EQ(d.kind, RolloutDecision::kPromote);
  EXPECT_EQ(d.next.kind, PolicyKind::kPinned);
  EXPECT_EQ(d.next.baseline, "int8");
}

TEST(RolloutTest, GuardsRollBackWithTheirFiguresOnlyAfterMinSamples) {
  const RolloutCounters start;
  const TrafficPolicy p = Rollout();
  // 10% disagreement over 10 rows: too few to judge.
  EXPECT_EQ(JudgeStage(p, start, Counters(10, 0, 9, 1), 1).kind,
            RolloutDecision::kHold);
  RolloutDecision d = JudgeStage(p, start, Counters(50, 0, 45, 5), 1);
  EXPECT_EQ(d.kind, RolloutDecision::kRollback);
  EXPECT_EQ(d.actor, "guard:disagreement");
  EXPECT_THAT(d.reason, HasSubstr("10.00% > 2.00% over 50 rows"));
  EXPECT_EQ(d.next.baseline, "fp32");
  d = JudgeStage(p, start, Counters(40, 10, 50, 0), 1);
  EXPECT_EQ(d.actor, "guard:error_rate");
  RolloutCounters low = Counters(50, 0, 50, 0);
  low.cosine_sum = 40;  // mean 0.8
  EXPECT_EQ(JudgeStage(p, start, low, 1).actor, "guard:cosine");
  RolloutCounters slow = Counters(50, 0, 50, 0);
  slow.bounds = {0.001, 0.01, 0.1};
  slow.baseline_buckets = {50, 50, 50};
  slow.candidate_buckets = {0, 0, 50};
  d = JudgeStage(p, start, slow, 1);
  EXPECT_EQ(d.actor, "guard:p99_ratio");
  // A stage counts from its start: earlier disagreements do not count.
  const RolloutCounters before = Counters(0, 0, 0, 30);
  EXPECT_EQ(JudgeStage(p, before, Counters(50, 0, 50, 30), 1).kind,
            RolloutDecision::kHold);
}

}  // namespace
}  // namespace twinserve
