#include "quant/report.h"

#include <limits>

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(ReportTest, JsonRoundTripKeepsEveryField) {
  QuantizationReport r;
  r.mode = "static";
  r.method = "entropy";
  r.percentile = 99.9;
  r.per_channel_weights = false;
  r.calibration_samples = 400;
  r.eval_samples = 100;
  r.layers = {
      {"conv1 output", false, 31.5, true},
      {"fc.weight", true, std::numeric_limits<double>::infinity(), false}};
  r.fp32_modules = {"fc"};
  r.fallback_log = {"trial 1: ..."};
  r.trials = 2;
  r.criterion_met = false;
  r.top1_agreement = 98.5;
  r.cosine_mean = 0.999;
  r.max_abs_error = 0.5;
  r.mean_abs_error = 0.01;
  r.fp32_accuracy = 91;
  r.int8_accuracy = 90.5;
  r.fp32_serialized_bytes = 1000;
  r.int8_serialized_bytes = 300;
  r.fp32_parameter_bytes = 800;
  r.int8_parameter_bytes = 200;
  r.fp32_latency_ms_b1 = 1.5;
  r.int8_latency_ms_b1 = 0.5;
  r.fp32_latency_ms_b32 = 20;
  r.int8_latency_ms_b32 = 8;
  r.duration_seconds = 12.5;
  auto back = QuantizationReport::FromJson(r.ToJson());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->ToJson(), r.ToJson());
  EXPECT_EQ(back->layers[1].sqnr_db, 999);  // infinity, stored finite
  EXPECT_EQ(back->method, "entropy");
  EXPECT_FALSE(back->criterion_met);
  EXPECT_EQ(QuantizationReport::FromJson("{").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace twinserve
