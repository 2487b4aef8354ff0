#include "server/core/rollout_driver.h"

#include <cstring>
#include <random>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/core/test_util/core_fixture.h"
#include "server/serving/engine.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::CoreFixture;

TrafficPolicy Rollout(const std::string& candidate) {
  TrafficPolicy p;
  p.kind = PolicyKind::kRollout;
  p.candidate = candidate;
  p.steps = {50, 100};
  p.min_requests = 0;
  p.min_seconds = 0;
  return p;
}

TEST(RolloutDriverTest, NeverUndoesAnOperatorsChangeMadeWhileItJudged) {
  // The driver used to write its next step without a version check: an
  // operator's rollback made between its read and its write was undone.
  CoreFixture f;
  f.RegisterAddSub("m");
  f.AddVariant("m", "alt");
  ASSERT_TRUE(f.traffic->SetPolicy("m", Rollout("alt"), {}).ok());
  RolloutDriver driver(f.registry.get(), f.traffic.get(), /*tick_ms=*/0);
  EXPECT_TRUE(driver.Judge().empty());  // a stage starts counting
  auto plans = driver.Judge();
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_EQ(plans[0].decision.action, "advance");
  PolicyChangeBy oncall;
  oncall.actor = "oncall";
  oncall.reason = "3 a.m.";
  auto rolled = f.traffic->Rollback("m", oncall);
  ASSERT_TRUE(rolled.ok()) << rolled.status();
  auto applied = driver.Apply(plans);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].code(), absl::StatusCode::kAborted);
  EXPECT_THAT(applied[0].message(), HasSubstr("moved on"));
  auto now = f.registry->GetPolicy("m");
  EXPECT_EQ(now->kind, PolicyKind::kPinned);
  EXPECT_EQ(now->version, rolled->version);
  EXPECT_EQ(f.registry->PolicyHistory("m")->back().actor, "oncall");
  // Without interference the same plan applies.
  ASSERT_TRUE(f.traffic->SetPolicy("m", Rollout("alt"), {}).ok());
  driver.Judge();
  plans = driver.Judge();
  ASSERT_EQ(plans.size(), 1u);
  EXPECT_TRUE(driver.Apply(plans)[0].ok());
  EXPECT_EQ(f.registry->GetPolicy("m")->stage, 1);
}

TEST(RolloutDriverTest, AGuardJudgesFromTheCoresOwnStatistics) {
  // No Prometheus anywhere: the statistics the guards read are the core's.
  CoreFixture f;
  f.RegisterAddSub("m");
  ASSERT_TRUE(
      f.registrar->RegisterVariant("m", "bad", f.Stage("add_sub_wrong.pt"))
          .ok());
  TrafficPolicy p = Rollout("bad");
  p.min_requests = 1000000;  // never advances here
  p.guards.min_samples = 10;
  p.guards.max_p99_ratio = 0;
  ASSERT_TRUE(f.traffic->SetPolicy("m", p, {}).ok());
  RolloutDriver driver(f.registry.get(), f.traffic.get(), /*tick_ms=*/0);
  driver.Tick();
  InferenceEngine engine(f.registry.get(), {});
  std::mt19937 rng(2);
  for (int i = 0; i < 100; ++i) {
    InferRequest req;
    req.model = "m";
    req.inputs = {::twinserve::testing::RandomFloats("a", {1, 4}, &rng),
                  ::twinserve::testing::RandomFloats("b", {1, 4}, &rng)};
    ASSERT_TRUE(engine.InferSync(std::move(req)).ok());
  }
  for (int i = 0;
       i < 200 && f.registry->GetPolicy("m")->kind == PolicyKind::kRollout;
       ++i) {
    driver.Tick();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto now = f.registry->GetPolicy("m");
  EXPECT_EQ(now->kind, PolicyKind::kPinned);
  EXPECT_EQ(now->baseline, "fp32");
  EXPECT_EQ(now->author, "guard:disagreement");
  auto view = f.registry->View("m");
  EXPECT_EQ(view->events.rollbacks.at("guard:disagreement"), 1u);
}

}  // namespace
}  // namespace twinserve
