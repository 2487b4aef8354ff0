#include "quant/quantize_options.h"

#include <limits>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

TEST(QuantizeOptionsTest, NamesRoundTripAndEachModeHasItsVariant) {
  for (QuantMode m : {QuantMode::kStatic, QuantMode::kDynamic, QuantMode::kFp16,
                      QuantMode::kBf16}) {
    EXPECT_EQ(*ParseQuantMode(QuantModeName(m)), m);
  }
  EXPECT_STREQ(DefaultVariantName(QuantMode::kStatic), "int8");
  EXPECT_STREQ(DefaultVariantName(QuantMode::kDynamic), "int8-dynamic");
  EXPECT_STREQ(DefaultVariantName(QuantMode::kBf16), "bf16");
  EXPECT_THAT(ParseQuantMode("int4").status().message(),
              HasSubstr("static, dynamic"));
  for (RangeMethod m : {RangeMethod::kMinMax, RangeMethod::kPercentile,
                        RangeMethod::kEntropy, RangeMethod::kMse}) {
    EXPECT_EQ(*ParseRangeMethod(RangeMethodName(m)), m);
  }
  EXPECT_FALSE(ParseRangeMethod("median").ok());
}

TEST(QuantizeOptionsTest, RefusesWhatAJobRecordCannotHold) {
  EXPECT_TRUE(ValidateQuantizeOptions({}).ok());
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  QuantizeOptions o;
  o.percentile = nan;
  EXPECT_THAT(ValidateQuantizeOptions(o).message(), HasSubstr("percentile"));
  o = {};
  o.percentile = 0;
  EXPECT_FALSE(ValidateQuantizeOptions(o).ok());
  o = {};
  o.max_agreement_loss = nan;
  EXPECT_THAT(ValidateQuantizeOptions(o).message(),
              HasSubstr("max_agreement_loss"));
  o = {};
  o.max_accuracy_loss = inf;
  EXPECT_THAT(ValidateQuantizeOptions(o).message(),
              HasSubstr("max_accuracy_loss"));
  o = {};
  o.max_accuracy_loss = -1;  // no limit
  EXPECT_TRUE(ValidateQuantizeOptions(o).ok());
  o = {};
  o.time_limit_seconds = nan;
  EXPECT_THAT(ValidateQuantizeOptions(o).message(), HasSubstr("time_limit"));
  o = {};
  o.max_trials = 1001;
  EXPECT_THAT(ValidateQuantizeOptions(o).message(), HasSubstr("max_trials"));
  o = {};
  o.max_calibration_samples = 0;
  EXPECT_THAT(ValidateQuantizeOptions(o).message(), HasSubstr("max_samples"));
  o = {};
  o.mode = QuantMode::kFp16;
  EXPECT_EQ(ValidateQuantizeOptions(o).code(),
            absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace twinserve
