#include "server/grpc/management_convert.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(ManagementConvertTest, EveryPolicyFieldCrossesBothWays) {
  // The policy the server returned used to drop steps, stage, the min_*
  // fields and every guard: `twinctl policy` then aborted on a rollout.
  TrafficPolicy p;
  p.kind = PolicyKind::kRollout;
  p.baseline = "fp32";
  p.candidate = "int8";
  p.shadow_fraction = 0.75;
  p.steps = {5, 25, 100};
  p.stage = 2;
  p.min_requests = 123;
  p.min_seconds = 4.5;
  p.compare_fraction = 0.25;
  p.guards = {0.125, 0.5, 0.0625, 3.5, 77};
  p.version = 9;
  p.updated_unix_ms = 1234;
  p.author = "alice";
  p.reason = "slowly";
  v1::TrafficPolicy wire;
  PolicyToProto(p, &wire);
  auto back = PolicyFromProto(wire);
  ASSERT_TRUE(back.ok()) << back.status();
  // Through the stored form, every field included.
  TrafficPolicy expected = p;
  back->version = p.version;  // bookkeeping is the server's, not the client's
  back->updated_unix_ms = p.updated_unix_ms;
  back->author = p.author;
  back->reason = p.reason;
  EXPECT_EQ(PolicyToJson(*back), PolicyToJson(expected));
  EXPECT_EQ(wire.version(), 9u);
  EXPECT_EQ(wire.author(), "alice");

  TrafficPolicy weighted;
  weighted.kind = PolicyKind::kWeighted;
  weighted.weights = {{"fp32", 9}, {"int8", 1}};
  v1::TrafficPolicy w;
  PolicyToProto(weighted, &w);
  EXPECT_EQ(PolicyToJson(*PolicyFromProto(w)), PolicyToJson(weighted));
}

TEST(ManagementConvertTest, UnsetPolicyFieldsKeepTheDefaults) {
  v1::TrafficPolicy wire;
  wire.set_kind("rollout");
  wire.set_candidate("int8");
  wire.add_steps(10);
  auto p = PolicyFromProto(wire);
  ASSERT_TRUE(p.ok());
  const TrafficPolicy defaults;
  EXPECT_EQ(p->baseline, "fp32");
  EXPECT_EQ(p->min_requests, defaults.min_requests);
  EXPECT_EQ(p->guards.max_disagreement, defaults.guards.max_disagreement);
  EXPECT_EQ(p->guards.min_samples, defaults.guards.min_samples);
  wire.set_kind("canary");
  EXPECT_EQ(PolicyFromProto(wire).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ManagementConvertTest, QuantizeRequestLeavesDefaultsToTheCore) {
  v1::QuantizeRequest q;
  q.set_model("m");
  q.set_mode("dynamic");
  auto r = QuantizeRequestFromProto(q);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->options.mode, QuantMode::kDynamic);
  EXPECT_EQ(r->variant, "");  // the core names it: int8-dynamic
  EXPECT_EQ(r->calibration_set, "calib");
  EXPECT_EQ(r->options.max_agreement_loss,
            QuantizeOptions().max_agreement_loss);
  q.set_method("median");
  EXPECT_EQ(QuantizeRequestFromProto(q).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ManagementConvertTest, SpecsAndBatching) {
  v1::TensorSpec s;
  s.set_name("x");
  s.set_datatype("FP32");
  s.add_shape(-1);
  s.add_shape(4);
  auto spec = SpecFromProto(s);
  ASSERT_TRUE(spec.ok());
  v1::TensorSpec back;
  SpecToProto(*spec, &back);
  EXPECT_EQ(back.SerializeAsString(), s.SerializeAsString());
  s.set_datatype("COMPLEX");
  EXPECT_THAT(SpecFromProto(s).status().message(),
              ::testing::HasSubstr("tensor spec 'x'"));
  BatchingConfig c;
  c.max_batch_size = 8;
  c.max_queue_delay_us = 100;
  c.preferred_batch_sizes = {4, 8};
  c.queue_capacity = 50;
  v1::BatchingConfig wire;
  BatchingToProto(c, &wire);
  EXPECT_TRUE(BatchingFromProto(wire) == c);
}

}  // namespace
}  // namespace twinserve
