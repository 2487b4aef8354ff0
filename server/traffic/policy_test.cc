#include "server/traffic/policy.h"

#include <limits>
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

TEST(PolicyTest, ValidationNamesTheProblem) {
  const std::set<std::string> variants = {"fp32", "int8"};
  EXPECT_TRUE(ValidatePolicy(Weighted(1, 1), variants).ok());
  TrafficPolicy p = Weighted(1, 1);
  p.weights["bf16"] = 1;
  EXPECT_THAT(ValidatePolicy(p, variants).message(),
              ::testing::HasSubstr("'bf16'"));
  EXPECT_FALSE(ValidatePolicy(Weighted(0, 0), variants).ok());
  EXPECT_FALSE(ValidatePolicy(Weighted(-1, 2), variants).ok());
  TrafficPolicy pinned;
  pinned.baseline = "fp16";
  EXPECT_FALSE(ValidatePolicy(pinned, variants).ok());
  EXPECT_EQ(ParsePolicyKind("canary").status().code(),
            absl::StatusCode::kInvalidArgument);
  TrafficPolicy r;
  r.kind = PolicyKind::kRollout;
  r.candidate = "int8";
  EXPECT_FALSE(ValidatePolicy(r, variants).ok());  // no steps
  r.steps = {1, 10, 50, 100};
  EXPECT_TRUE(ValidatePolicy(r, variants).ok());
  r.steps = {10, 5};
  EXPECT_FALSE(ValidatePolicy(r, variants).ok());
}

TEST(PolicyTest, ValidationRefusesWhatTheManifestCannotHold) {
  const std::set<std::string> variants = {"fp32", "int8"};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto message = [&](const TrafficPolicy& p) {
    return std::string(ValidatePolicy(p, variants).message());
  };
  EXPECT_THAT(message(Weighted(1, inf)),
              ::testing::HasSubstr("weight of 'int8'"));
  EXPECT_THAT(message(Weighted(nan, 1)),
              ::testing::HasSubstr("weight of 'fp32'"));
  // Each finite, their sum not (found by policy_fuzz): shares would be 0.
  EXPECT_THAT(message(Weighted(1e308, 1e308)),
              ::testing::HasSubstr("finite sum"));
  TrafficPolicy pinned;
  pinned.weights["int8"] = 1;  // meaningless here: refused, not ignored
  EXPECT_THAT(message(pinned),
              ::testing::HasSubstr("only to a weighted policy"));
  // Numbers a kind does not use are still stored: finite for every kind.
  TrafficPolicy shadow;
  shadow.kind = PolicyKind::kShadow;
  shadow.candidate = "int8";
  shadow.guards.max_error_rate = nan;
  EXPECT_THAT(message(shadow), ::testing::HasSubstr("max_error_rate"));
  TrafficPolicy weighted = Weighted(1, 1);
  weighted.steps = {inf};
  EXPECT_THAT(message(weighted), ::testing::HasSubstr("steps"));

  TrafficPolicy r;
  r.kind = PolicyKind::kRollout;
  r.candidate = "int8";
  r.steps = {10, 100};
  ASSERT_TRUE(ValidatePolicy(r, variants).ok());
  auto with = [&](auto change) {
    TrafficPolicy copy = r;
    change(copy);
    return message(copy);
  };
  EXPECT_THAT(with([&](TrafficPolicy& p) { p.min_seconds = nan; }),
              ::testing::HasSubstr("min_seconds"));
  EXPECT_THAT(with([&](TrafficPolicy& p) { p.min_seconds = inf; }),
              ::testing::HasSubstr("min_seconds"));
  EXPECT_THAT(with([](TrafficPolicy& p) { p.min_requests = -1; }),
              ::testing::HasSubstr("min_requests"));
  EXPECT_THAT(with([&](TrafficPolicy& p) { p.guards.max_disagreement = nan; }),
              ::testing::HasSubstr("max_disagreement"));
  EXPECT_THAT(with([](TrafficPolicy& p) { p.guards.min_cosine = 2; }),
              ::testing::HasSubstr("min_cosine"));
  EXPECT_THAT(with([](TrafficPolicy& p) { p.guards.max_error_rate = 1.5; }),
              ::testing::HasSubstr("max_error_rate"));
  EXPECT_THAT(with([&](TrafficPolicy& p) { p.guards.max_p99_ratio = inf; }),
              ::testing::HasSubstr("max_p99_ratio"));
  EXPECT_THAT(with([](TrafficPolicy& p) { p.guards.min_samples = -5; }),
              ::testing::HasSubstr("min_samples"));
  // 0 turns a guard off and is fine.
  EXPECT_TRUE(with([](TrafficPolicy& p) {
                p.guards.max_p99_ratio = 0;
                p.guards.min_cosine = 0;
              }).empty());
}

TEST(PolicyTest, StoredWeightsOnOtherKindsAreDroppedOnLoad) {
  TrafficPolicy pinned;
  pinned.weights["int8"] = 1;  // as an earlier version could have stored
  auto back = PolicyFromJson(PolicyToJson(pinned));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->weights.empty());
}

TEST(PolicyTest, RolloutFieldsSurviveJson) {
  TrafficPolicy p;
  p.kind = PolicyKind::kRollout;
  p.candidate = "int8";
  p.steps = {10, 100};
  p.stage = 1;
  p.min_requests = 7;
  p.min_seconds = 8;
  p.compare_fraction = 0.25;
  p.guards = {0.125, 0.5, 0.0625, 3.5, 77};
  auto back = PolicyFromJson(PolicyToJson(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(PolicyToJson(*back), PolicyToJson(p));
  EXPECT_EQ(back->steps, p.steps);
  EXPECT_EQ(back->stage, 1);
  EXPECT_EQ(back->guards.min_samples, 77);
  EXPECT_NEAR(TrafficShares(p).at("int8"), 1.0, 1e-9);
}

TEST(PolicyTest, JsonRoundTrip) {
  TrafficPolicy p = Weighted(9, 1);
  p.author = "ops";
  auto back = PolicyFromJson(PolicyToJson(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->weights, p.weights);
  EXPECT_EQ(back->version, 3u);
  std::vector<PolicyChange> h = {{1, 100, "set", "ops", "why", p}};
  auto hb = HistoryFromJson(HistoryToJson(h));
  ASSERT_TRUE(hb.ok());
  EXPECT_EQ(hb->at(0).actor, "ops");
  EXPECT_EQ(hb->at(0).policy.kind, PolicyKind::kWeighted);
}

}  // namespace
}  // namespace twinserve
