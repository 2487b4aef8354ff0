#include "server/serving/cost_model.h"

#include <ostream>

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(CostModelTest, InterpolatesBetweenMeasuredSizesAndExtrapolatesPerRow) {
  CostModel m(16, 2);
  EXPECT_FALSE(m.Known());
  EXPECT_EQ(m.Estimate(4), 0);
  m.Observe(1, 1, 1000);
  m.Observe(4, 1, 2500);
  EXPECT_TRUE(m.Known());
  EXPECT_DOUBLE_EQ(m.Estimate(1), 1000);
  EXPECT_DOUBLE_EQ(m.Estimate(2), 1500);     // between 1 and 4
  EXPECT_DOUBLE_EQ(m.Estimate(8), 5000);     // 4's per-row cost
  EXPECT_DOUBLE_EQ(m.Estimate(4, 2), 2500);  // no data at 2: from 1
  m.Observe(4, 2, 4000);
  EXPECT_DOUBLE_EQ(m.Estimate(4, 2), 4000);
  EXPECT_EQ(m.Curve().size(), 2u);
}

TEST(CostModelTest, FollowsTheMachineWithoutJumpingAtOneRun) {
  CostModel m(4, 1);
  m.Observe(2, 1, 1000);
  m.Observe(2, 1, 9000);  // one slow run moves it an eighth of the way
  EXPECT_DOUBLE_EQ(m.Estimate(2), 2000);
  for (int i = 0; i < 100; ++i) m.Observe(2, 1, 9000);
  EXPECT_NEAR(m.Estimate(2), 9000, 10);
}

TEST(CostModelTest, ScalesTheBaseCurveByTheSlowDownMeasuredAtAConcurrency) {
  CostModel m(8, 2);
  for (int r = 1; r <= 8; r *= 2) m.Observe(r, 1, 1000 * r);
  EXPECT_DOUBLE_EQ(m.Estimate(8, 2), 8000);  // nothing at 2 yet
  m.Observe(2, 2, 3000);                     // 1.5x slower two at once
  EXPECT_DOUBLE_EQ(m.Estimate(2, 2), 3000);
  EXPECT_DOUBLE_EQ(m.Estimate(4, 2), 6000);
  m.Observe(8, 2, 16000);  // nearer 6 than 2 is: 2x
  EXPECT_DOUBLE_EQ(m.Estimate(6, 2), 12000);
  EXPECT_DOUBLE_EQ(m.Estimate(6, 1), 6000);
}

}  // namespace

void PrintTo(const CostModel::Plan& p, std::ostream* os) {
  *os << p.executions << " x " << p.rows_each;
}

namespace {

TEST(CostModelTest, ChoosesThePlanThatAnswersTheMostRowsPerSecond) {
  using Plan = CostModel::Plan;
  // Flat per-row cost (an AVX2 core's INT8 convolutions): batching gains
  // nothing, so rows run one per execution, on every free worker.
  CostModel flat(8, 2);
  for (int r = 1; r <= 8; ++r) flat.Observe(r, 1, 1000 * r);
  EXPECT_EQ(flat.Choose(8, 0, 1, 50), (Plan{2, 1}));
  EXPECT_EQ(flat.Choose(8, 0, 0, 50), (Plan{1, 1}));  // no free worker
  EXPECT_EQ(flat.Choose(1, 0, 1, 50), (Plan{1, 1}));
  // Two at once twice as slow each (one shared core): one execution.
  for (int r = 1; r <= 8; ++r) flat.Observe(r, 2, 2000 * r);
  EXPECT_EQ(flat.Choose(8, 0, 1, 50), (Plan{1, 1}));
  // Rows nearly free once batched: all in one execution (a second worker
  // would not answer sooner).
  CostModel cheap_rows(8, 2);
  cheap_rows.Observe(1, 1, 1000);
  cheap_rows.Observe(4, 1, 1100);
  cheap_rows.Observe(8, 1, 1200);
  EXPECT_EQ(cheap_rows.Choose(8, 0, 1, 100), (Plan{1, 8}));
  // Batches cheaper per row, but not free (a VNNI core at small batch):
  // split over two workers where that answers sooner...
  CostModel economies(8, 2);
  for (int r = 1; r <= 8; ++r) economies.Observe(r, 1, 1000 + 500 * r);
  EXPECT_EQ(economies.Choose(8, 0, 1, 100), (Plan{2, 4}));
  EXPECT_EQ(economies.Choose(8, 0, 0, 100), (Plan{1, 8}));
  // ... not when the hand-off costs more than it saves.
  EXPECT_EQ(economies.Choose(8, 0, 1, 1e9), (Plan{1, 8}));
  // With rows for two full batches, both workers take one.
  CostModel big(16, 2);
  for (int r = 1; r <= 8; ++r) big.Observe(r, 1, 1000 + 200 * r);
  for (int r = 9; r <= 16; ++r) big.Observe(r, 1, 2600 + 600 * r);
  EXPECT_EQ(big.Choose(16, 0, 1, 100), (Plan{2, 8}));
  EXPECT_EQ(big.Choose(16, 0, 0, 100), (Plan{1, 8}));  // 8 wait their turn
  // Per-row cost rising with rows (caches overflow): small batches.
  CostModel rising(8, 1);
  for (int r = 1; r <= 8; ++r) rising.Observe(r, 1, 1000 * r * r);
  EXPECT_EQ(rising.Choose(8, 0, 0, 0), (Plan{1, 1}));
  // Nothing measured: everything on offer in one execution.
  CostModel unknown(8, 2);
  EXPECT_EQ(unknown.Choose(8, 0, 1, 0), (Plan{1, 8}));
}

}  // namespace
}  // namespace twinserve
