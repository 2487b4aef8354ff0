#include "quant/evaluator.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::FixturePath;
using ::twinserve::testing::LoadFashionSplit;
using ::twinserve::testing::RowsOf;

Signature Fashion() {
  Signature s;
  s.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}};
  s.outputs = {{"logits", DataType::kFp32, {-1, 10}}};
  return s;
}

TEST(EvaluatorTest, AModelAgreesFullyWithItselfAndScoresItsAccuracy) {
  auto split = LoadFashionSplit("t10k");
  auto set = CalibrationSet::ForSignature(Fashion(), "eval");
  ASSERT_TRUE(set.ok());
  std::vector<int64_t> labels(split.labels.begin(), split.labels.begin() + 200);
  ASSERT_TRUE(set->Append({RowsOf(split.images, 0, 200)}, labels, {}).ok());
  auto a = Runner::Load(FixturePath("fashion_cnn.pt"), Fashion(), {});
  RunnerOptions plain;
  plain.optimize = false;
  auto b = Runner::Load(FixturePath("fashion_cnn.pt"), Fashion(), plain);
  ASSERT_TRUE(a.ok() && b.ok());
  auto m = Evaluate(**a, **b, {&*set, 0, 200}, 64, nullptr);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->agreement, 100);
  EXPECT_NEAR(m->cosine, 1.0, 1e-6);
  EXPECT_LT(m->max_abs, 1e-3);
  EXPECT_GT(m->fp32_acc, 80);
  EXPECT_EQ(m->fp32_acc, m->int8_acc);

  std::atomic<bool> cancel{true};
  EXPECT_EQ(Evaluate(**a, **b, {&*set, 0, 200}, 64, &cancel).status().code(),
            absl::StatusCode::kCancelled);

  auto in = LatencyInput({&*set, 0, 200}, 3);
  ASSERT_EQ(in.size(), 1u);
  EXPECT_EQ(in[0].shape, (Shape{3, 1, 28, 28}));
  EXPECT_GT(MedianLatencyMs(**a, in, 3), 0);
}

TEST(EvaluatorTest, CriterionChecksAgreementAndLabelledAccuracy) {
  QuantizeOptions o;
  o.max_agreement_loss = 2;
  o.max_accuracy_loss = 1;
  EvalMetrics m;
  m.agreement = 98.5;
  EXPECT_TRUE(CriterionMet(o, m));
  m.agreement = 97.5;
  EXPECT_FALSE(CriterionMet(o, m));
  m.agreement = 99;
  m.fp32_acc = 91;
  m.int8_acc = 89.5;
  EXPECT_FALSE(CriterionMet(o, m));
  o.max_accuracy_loss = -1;  // off
  EXPECT_TRUE(CriterionMet(o, m));
}

}  // namespace
}  // namespace twinserve
