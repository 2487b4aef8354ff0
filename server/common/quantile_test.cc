#include "server/common/quantile.h"

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(QuantileTest, InterpolatesInsideTheBucketAsPrometheusDoes) {
  const std::vector<double> bounds = {1, 2, 4};
  // 10 values <= 1, 10 in (1, 2], none above.
  const std::vector<uint64_t> cumulative = {10, 20, 20};
  EXPECT_DOUBLE_EQ(QuantileFromBuckets(bounds, cumulative, 0.5), 1.0);
  EXPECT_DOUBLE_EQ(QuantileFromBuckets(bounds, cumulative, 0.75), 1.5);
  EXPECT_DOUBLE_EQ(QuantileFromBuckets(bounds, cumulative, 0.25), 0.5);
  EXPECT_EQ(QuantileFromBuckets(bounds, {0, 0, 0}, 0.5), 0);
  EXPECT_EQ(QuantileFromBuckets({}, {}, 0.5), 0);
}

}  // namespace
}  // namespace twinserve
