#include "kernels/drift.h"

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(DriftTest, IdenticalRowsAgreeFully) {
  const float a[] = {1, 2, 3, 0, 5, 1};
  DriftStats s = CompareRows(a, a, 2, 3);
  EXPECT_DOUBLE_EQ(s.cosine_sum / s.rows, 1.0);
  EXPECT_EQ(s.max_abs_error, 0);
  EXPECT_EQ(s.top1_agreements, 2);
  EXPECT_EQ(s.top1_disagreements, 0);
}

TEST(DriftTest, DisagreementCosineAndError) {
  const float a[] = {1, 0, 0, 1};
  const float b[] = {0, 1, 0, 1.5f};
  DriftStats s = CompareRows(a, b, 2, 2);
  EXPECT_EQ(s.top1_agreements, 1);     // row 1: both pick index 1
  EXPECT_EQ(s.top1_disagreements, 1);  // row 0: 0 vs 1
  EXPECT_NEAR(s.cosine_sum, 0.0 + 1.0, 1e-9);
  EXPECT_DOUBLE_EQ(s.max_abs_error, 1.0);
  // Single-value outputs are not classifiers: no top-1 counts.
  DriftStats r = CompareRows(a, b, 4, 1);
  EXPECT_EQ(r.top1_agreements + r.top1_disagreements, 0);
}

TEST(DriftTest, ZeroRowsAreIdenticalOnlyToZeroRows) {
  // The quantization report and live shadow comparison once disagreed here:
  // this is the one rule for both.
  const float zero[] = {0, 0, 0};
  const float one[] = {1, 0, 0};
  EXPECT_DOUBLE_EQ(CompareRows(zero, zero, 1, 3).cosine_sum, 1.0);
  EXPECT_DOUBLE_EQ(CompareRows(zero, one, 1, 3).cosine_sum, 0.0);
  EXPECT_DOUBLE_EQ(CompareRows(one, zero, 1, 3).cosine_sum, 0.0);
}

TEST(DriftTest, MeanErrorTopIndicesAndMerge) {
  const float a[] = {1, 2, 3, 4, 0, 0};
  const float b[] = {1, 2, 4, 4, 1, 0};
  int64_t ta[2], tb[2];
  DriftStats s = CompareRows(a, b, 2, 3, ta, tb);
  EXPECT_EQ(s.elements, 6);
  EXPECT_DOUBLE_EQ(s.abs_error_sum, 2.0);
  EXPECT_EQ(ta[0], 2);
  EXPECT_EQ(tb[0], 2);
  EXPECT_EQ(ta[1], 0);
  EXPECT_EQ(tb[1], 0);  // 4 vs 1: first row's max
  DriftStats total;
  total.Merge(s);
  total.Merge(CompareRows(a, a, 2, 3));
  EXPECT_EQ(total.rows, 4);
  EXPECT_EQ(total.top1_agreements, 4);
  EXPECT_DOUBLE_EQ(total.max_abs_error, 1.0);
}

}  // namespace
}  // namespace twinserve
