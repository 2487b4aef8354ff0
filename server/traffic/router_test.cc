#include "server/traffic/router.h"

#include <random>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

TrafficPolicy Weighted(double fp32, double int8) {
  TrafficPolicy p;
  p.kind = PolicyKind::kWeighted;
  p.weights = {{"fp32", fp32}, {"int8", int8}};
  p.version = 3;
  return p;
}

TEST(RouterTest, PinnedSendsEverythingToTheBaseline) {
  TrafficPolicy p;
  p.baseline = "int8";
  EXPECT_EQ(ChooseVariant(p, "", 0.99), "int8");
  EXPECT_EQ(TrafficShares(p).at("int8"), 1.0);
}

TEST(RouterTest, WeightedSharesAreRespected) {
  const TrafficPolicy p = Weighted(90, 10);
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  int int8 = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) int8 += ChooseVariant(p, "", u(rng)) == "int8";
  EXPECT_NEAR(int8 / double(n), 0.10, 0.01);
  EXPECT_NEAR(TrafficShares(p).at("fp32"), 0.9, 1e-9);
}

TEST(RouterTest, RoutingKeysAreStickyAndSpread) {
  const TrafficPolicy p = Weighted(50, 50);
  int int8 = 0;
  for (int k = 0; k < 10000; ++k) {
    const std::string key = "user-" + std::to_string(k);
    const std::string first = ChooseVariant(p, key, 0.0);
    for (double u : {0.3, 0.7, 0.99}) {
      ASSERT_EQ(ChooseVariant(p, key, u), first) << key;
    }
    int8 += first == "int8";
  }
  EXPECT_NEAR(int8 / 10000.0, 0.5, 0.03);
}

TEST(RouterTest, RolloutStageSplitsTrafficAndComparesOnTheCandidate) {
  TrafficPolicy p;
  p.kind = PolicyKind::kRollout;
  p.candidate = "int8";
  p.steps = {10, 100};
  p.stage = 0;
  EXPECT_NEAR(TrafficShares(p).at("int8"), 0.10, 1e-9);
  EXPECT_EQ(ChooseVariant(p, "", 0.95), "int8");  // fp32 takes [0, 0.9)
  EXPECT_EQ(ChooseVariant(p, "", 0.5), "fp32");
  std::string other;
  EXPECT_TRUE(ShouldCompare(p, "int8", 0.3, &other));
  EXPECT_EQ(other, "fp32");
  EXPECT_FALSE(ShouldCompare(p, "fp32", 0.3, &other));
  p.stage = 1;
  EXPECT_EQ(ChooseVariant(p, "", 0.99), "int8");
}

TEST(RouterTest, OneDrawDecidesTheVariantAndTheComparisonTogether) {
  TrafficPolicy p;
  p.kind = PolicyKind::kRollout;
  p.candidate = "int8";
  p.steps = {50, 100};
  p.compare_fraction = 0.5;
  std::mt19937_64 rng(3);
  int served_int8 = 0, compared = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const Route r = Decide(p, "", rng());
    if (r.served == "int8") {
      ++served_int8;
      if (!r.compare.empty()) {
        ++compared;
        EXPECT_EQ(r.compare, "fp32");
        EXPECT_FALSE(r.served_is_baseline);
      }
    } else {
      EXPECT_TRUE(r.compare.empty());  // only candidate requests compare
    }
  }
  EXPECT_NEAR(served_int8 / double(n), 0.5, 0.01);
  // The two halves of the draw are independent.
  EXPECT_NEAR(compared / double(served_int8), 0.5, 0.015);

  TrafficPolicy shadow;
  shadow.kind = PolicyKind::kShadow;
  shadow.candidate = "int8";
  shadow.shadow_fraction = 1.0;
  const Route r = Decide(shadow, "", 12345);
  EXPECT_EQ(r.served, "fp32");
  EXPECT_EQ(r.compare, "int8");
  EXPECT_TRUE(r.served_is_baseline);
  TrafficPolicy pinned;
  EXPECT_TRUE(Decide(pinned, "key", ~uint64_t{0}).compare.empty());
}

}  // namespace
}  // namespace twinserve
