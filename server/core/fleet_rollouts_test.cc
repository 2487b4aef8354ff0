#include "server/core/fleet_rollouts.h"

#include <limits>

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(FleetRolloutsTest, CountersRoundTripThroughJson) {
  RolloutCounters c;
  c.candidate_success = 7;
  c.candidate_failed = 1;
  c.agreements = 5;
  c.disagreements = 2;
  c.cosine_sum = 6.5;
  c.cosine_count = 7;
  c.bounds = {0.001, 0.01, std::numeric_limits<double>::infinity()};
  c.candidate_buckets = {1, 5, 8};
  c.baseline_buckets = {2, 6, 9};
  std::map<std::string, std::pair<uint64_t, RolloutCounters>> in, out;
  in["m"] = {42, c};
  ASSERT_TRUE(FleetRollouts::Decode(FleetRollouts::Encode(in), &out));
  ASSERT_EQ(out.count("m"), 1u);
  EXPECT_EQ(out["m"].first, 42u);
  const RolloutCounters& d = out["m"].second;
  EXPECT_EQ(d.candidate_success, 7u);
  EXPECT_EQ(d.disagreements, 2u);
  EXPECT_DOUBLE_EQ(d.cosine_sum, 6.5);
  EXPECT_EQ(d.bounds, c.bounds);
  EXPECT_EQ(d.candidate_buckets, c.candidate_buckets);
  EXPECT_EQ(d.baseline_buckets, c.baseline_buckets);
  EXPECT_FALSE(FleetRollouts::Decode("{\"m\": 3}", &out));
}

TEST(FleetRolloutsTest, SumsAddUpAndStageCountsNeverGoNegative) {
  RolloutCounters start, now, sum;
  start.agreements = 10;
  start.candidate_buckets = {3, 4};
  now.agreements = 4;  // a replica restarted: its counters began again
  now.candidate_buckets = {5, 9};
  now.bounds = start.bounds = {1, 2};
  RolloutCounters since = CountersSince(start, now);
  EXPECT_EQ(since.agreements, 0u);
  EXPECT_EQ(since.candidate_buckets, (std::vector<uint64_t>{2, 5}));
  AddCounters(since, &sum);
  AddCounters(since, &sum);
  EXPECT_EQ(sum.candidate_buckets, (std::vector<uint64_t>{4, 10}));
  RolloutCounters other;
  other.bounds = {7};
  other.candidate_buckets = {100};
  other.agreements = 3;
  AddCounters(other, &sum);  // other bounds: counts add, histogram skipped
  EXPECT_EQ(sum.agreements, 3u);
  EXPECT_EQ(sum.candidate_buckets, (std::vector<uint64_t>{4, 10}));
}

}  // namespace
}  // namespace twinserve
