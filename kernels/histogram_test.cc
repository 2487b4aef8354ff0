#include "kernels/histogram.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(HistogramTest, CountsEveryValueOnceAndClampsEdges) {
  std::vector<float> v = {0.0f, 0.1f, 0.5f, 0.99f, 1.0f, -5.0f, 7.0f};
  std::vector<double> bins(10, 0.0);
  AccumulateHistogram(v.data(), v.size(), 0.0f, 1.0f, bins.data(), 10);
  double total = 0;
  for (double b : bins) total += b;
  EXPECT_EQ(total, 7);
  EXPECT_EQ(bins[0], 2);  // 0.0 and the clamped -5
  EXPECT_EQ(bins[1], 1);
  EXPECT_EQ(bins[5], 1);
  EXPECT_EQ(bins[9], 3);  // 0.99, 1.0 and the clamped 7
  float lo, hi;
  MinMax(v.data(), v.size(), &lo, &hi);
  EXPECT_EQ(lo, -5.0f);
  EXPECT_EQ(hi, 7.0f);
}

TEST(HistogramTest, AffineQParamsKeepZeroExact) {
  double scale;
  int64_t zp;
  AffineQParams({-1.0f, 3.0f}, 0, 255, &scale, &zp);
  EXPECT_NEAR(scale, 4.0 / 255, 1e-9);
  EXPECT_EQ(zp, 64);
  AffineQParams({0.0f, 2.55f}, 0, 255, &scale, &zp);
  EXPECT_EQ(zp, 0);
  AffineQParams({0.0f, 0.0f}, 0, 255, &scale, &zp);
  EXPECT_GT(scale, 0);
}

// A ReLU-like activation: mostly small, with a single far outlier. With 1M
// values the rounding noise a full range costs outweighs clipping it, so
// every search method must clip.
std::vector<double> HeavyTail(float* hi) {
  std::mt19937 rng(1);
  std::exponential_distribution<float> exp(4.0f);
  std::vector<float> v(1 << 20);
  for (auto& x : v) x = exp(rng);
  v[0] = 40.0f;  // one outlier stretches the range tenfold
  float lo;
  MinMax(v.data(), v.size(), &lo, hi);
  std::vector<double> bins(2048, 0.0);
  AccumulateHistogram(v.data(), v.size(), 0.0f, *hi, bins.data(), 2048);
  return bins;
}

TEST(ClipRangeTest, MinMaxKeepsTheObservedRange) {
  float hi;
  auto bins = HeavyTail(&hi);
  ClipRange r = ChooseClipRange(bins.data(), 2048, 0.0f, hi,
                                RangeMethod::kMinMax, 0, 256);
  EXPECT_EQ(r.lo, 0.0f);
  EXPECT_EQ(r.hi, hi);
}

TEST(ClipRangeTest, SearchesClipTheOutlierTail) {
  float hi;
  auto bins = HeavyTail(&hi);
  for (RangeMethod m :
       {RangeMethod::kPercentile, RangeMethod::kEntropy, RangeMethod::kMse}) {
    ClipRange r = ChooseClipRange(bins.data(), 2048, 0.0f, hi, m, 99.99, 256);
    EXPECT_EQ(r.lo, 0.0f) << static_cast<int>(m);
    // Exponential(4): 99.99% of the mass lies below ~2.3. MSE weighs the
    // outlier's squared error against 1M values' rounding noise and settles
    // between, still well inside the observed range.
    EXPECT_LT(r.hi, m == RangeMethod::kMse ? 0.5f * hi : 8.0f)
        << static_cast<int>(m);
    EXPECT_GT(r.hi, 0.5f) << static_cast<int>(m);
  }
}

TEST(ClipRangeTest, SignedActivationsAreClippedSymmetrically) {
  std::mt19937 rng(2);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(1 << 20);
  for (auto& x : v) x = normal(rng);
  v[0] = -30.0f;
  v[1] = 30.0f;
  std::vector<double> bins(2048, 0.0);
  AccumulateHistogram(v.data(), v.size(), -30.0f, 30.0f, bins.data(), 2048);
  ClipRange r = ChooseClipRange(bins.data(), 2048, -30.0f, 30.0f,
                                RangeMethod::kMse, 0, 256);
  EXPECT_NEAR(r.lo, -r.hi, 1e-5);
  EXPECT_GT(r.hi, 2.0f);
  EXPECT_LT(r.hi, 10.0f);
}

}  // namespace
}  // namespace twinserve
