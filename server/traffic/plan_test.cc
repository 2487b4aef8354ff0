#include "server/traffic/plan.h"

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(PlanTest, DefaultsRoundTripAndRefusals) {
  TrafficPlan plan;
  plan.id = "p1";
  plan.variant = "int8";
  plan.author = "ops";
  plan.base_version = 7;
  plan.policy.kind = PolicyKind::kRollout;
  plan.policy.steps = {10, 50, 100};
  ASSERT_TRUE(CompletePlan(&plan).ok());
  EXPECT_EQ(plan.policy.candidate, "int8");
  EXPECT_EQ(plan.policy.baseline, "fp32");
  auto back = PlanFromJson(PlanToJson(plan));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, "p1");
  EXPECT_EQ(back->variant, "int8");
  EXPECT_EQ(back->author, "ops");
  EXPECT_EQ(back->base_version, 7u);
  EXPECT_EQ(back->policy.kind, PolicyKind::kRollout);
  EXPECT_EQ(back->policy.candidate, "int8");
  EXPECT_EQ(back->policy.steps, plan.policy.steps);

  // A plan naming a variant the registration will not have.
  TrafficPlan other = plan;
  other.policy.candidate = "int4";
  absl::Status st = CompletePlan(&other);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("traffic plan for 'int8'"), std::string::npos)
      << st;
  EXPECT_EQ(PlanFromJson("{").status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace twinserve
