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

}  // namespace
}  // namespace twinserve
