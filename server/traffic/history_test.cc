#include "server/traffic/history.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(HistoryTest, ChangesAreVersionedStampedAndBounded) {
  std::vector<PolicyChange> history;
  TrafficPolicy current;
  for (int i = 0; i < 250; ++i) {
    TrafficPolicy next;
    next.baseline = i % 2 ? "int8" : "fp32";
    current =
        ApplyChange(current, next, "set", "ops", "why", 1000 + i, &history);
  }
  EXPECT_EQ(current.version, 250u);
  EXPECT_EQ(current.author, "ops");
  EXPECT_EQ(current.updated_unix_ms, 1249);
  ASSERT_EQ(history.size(), kMaxHistory);
  EXPECT_EQ(history.front().version, 51u);
  EXPECT_EQ(history.back().policy.version, 250u);
}

TEST(HistoryTest, RollbackGoesToThePolicyBeforeTheCurrentOne) {
  std::vector<PolicyChange> history;
  EXPECT_EQ(RollbackTarget("m", history).status().code(),
            absl::StatusCode::kFailedPrecondition);
  TrafficPolicy a;
  a.baseline = "int8";
  TrafficPolicy current = ApplyChange({}, a, "set", "ops", "", 1, &history);
  auto first = RollbackTarget("m", history);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(first->baseline, "fp32");  // the default
  TrafficPolicy b;
  b.baseline = "bf16";
  ApplyChange(current, b, "set", "ops", "", 2, &history);
  EXPECT_EQ(RollbackTarget("m", history)->baseline, "int8");
}

}  // namespace
}  // namespace twinserve
