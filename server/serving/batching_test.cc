#include "server/serving/batching.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

Signature Batchable() {
  Signature s;
  s.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  s.outputs = {{"y", DataType::kFp32, {-1, 2}}};
  return s;
}

TEST(BatchingTest, ValidatesRangesAndNormalizesPreferredSizes) {
  BatchingConfig c;
  c.max_batch_size = 16;
  c.preferred_batch_sizes = {8, 4, 8};
  ASSERT_TRUE(ValidateBatching(Batchable(), &c).ok());
  EXPECT_EQ(c.preferred_batch_sizes, (std::vector<int>{4, 8}));

  c.preferred_batch_sizes = {32};
  EXPECT_THAT(ValidateBatching(Batchable(), &c).message(),
              HasSubstr("preferred batch size 32 must be in [2, 16]"));
  c.preferred_batch_sizes.clear();
  c.max_batch_size = 5000;
  EXPECT_EQ(ValidateBatching(Batchable(), &c).code(),
            absl::StatusCode::kInvalidArgument);
  c.max_batch_size = 8;
  c.max_queue_delay_us = -1;
  EXPECT_THAT(ValidateBatching(Batchable(), &c).message(),
              HasSubstr("max_queue_delay_us"));
  c.max_queue_delay_us = 0;
  c.queue_capacity = 0;
  EXPECT_THAT(ValidateBatching(Batchable(), &c).message(),
              HasSubstr("queue_capacity"));
}

TEST(BatchingTest, OffDropsPreferredSizes) {
  BatchingConfig c;
  c.max_batch_size = 0;
  c.preferred_batch_sizes = {4, 8};
  ASSERT_TRUE(ValidateBatching(Batchable(), &c).ok());
  EXPECT_TRUE(c.preferred_batch_sizes.empty());
  EXPECT_FALSE(c.enabled());
}

TEST(BatchingTest, FixedBatchDimIsNotBatchable) {
  Signature s = Batchable();
  s.outputs[0].shape = {1, 2};
  BatchingConfig c;
  c.max_batch_size = 4;
  absl::Status st = ValidateBatching(s, &c);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(st.message(), HasSubstr("output 'y' is [1, 2]"));
  c.max_batch_size = 0;  // off is always fine
  EXPECT_TRUE(ValidateBatching(s, &c).ok());
}

TEST(BatchingTest, PolicyJsonRoundTripAndPerVariantOverride) {
  BatchingPolicy p;
  p.defaults.max_batch_size = 8;
  p.defaults.max_queue_delay_us = 250;
  p.per_variant["int8"].max_batch_size = 32;
  p.per_variant["int8"].preferred_batch_sizes = {16};
  p.per_variant["int8"].queue_capacity = 7;
  auto back = BatchingPolicyFromJson(BatchingPolicyToJson(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->For("fp32"), p.defaults);
  EXPECT_EQ(back->For("int8"), p.per_variant["int8"]);
  EXPECT_EQ(BatchingPolicyFromJson("")->For("fp32"), BatchingConfig());
  EXPECT_EQ(BatchingPolicyFromJson("{not json").status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace twinserve
