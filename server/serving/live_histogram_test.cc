#include "server/serving/live_histogram.h"

#include <cmath>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(LiveHistogramTest, BucketsAreLessOrEqualAndCumulative) {
  static const std::vector<double> bounds = {1, 2, 4};
  LiveHistogram h(bounds);
  for (double v : {0.5, 1.0, 1.5, 3.0, 100.0}) h.Observe(v);
  const HistogramSnapshot s = h.Snapshot();
  ASSERT_EQ(s.bounds.size(), 4u);
  EXPECT_TRUE(std::isinf(s.bounds.back()));
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum, 106.0);
}

TEST(LiveHistogramTest, ConcurrentObservationsAreAllCounted) {
  LiveHistogram h(LatencyBounds());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) h.Observe(0.001);
    });
  }
  for (auto& t : threads) t.join();
  const HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.count, 40000u);
  EXPECT_NEAR(s.sum, 40.0, 1e-6);
}

}  // namespace
}  // namespace twinserve
