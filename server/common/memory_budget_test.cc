#include "server/common/memory_budget.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(MemoryBudgetTest, ReservationsShareTheLimitAndGiveBytesBack) {
  MemoryBudget budget(100, "uploads", "--max_x");
  {
    MemoryReservation a(&budget);
    EXPECT_TRUE(a.Grow(60).ok());
    MemoryReservation b(&budget);
    absl::Status st = b.Grow(50);
    EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
    EXPECT_THAT(st.message(), ::testing::HasSubstr("--max_x=100"));
    EXPECT_TRUE(b.Grow(40).ok());
    EXPECT_EQ(budget.used(), 100u);
    EXPECT_FALSE(b.Grow(1).ok());
  }
  EXPECT_EQ(budget.used(), 0u);
  MemoryReservation c(&budget);
  EXPECT_FALSE(c.Grow(~uint64_t{0}).ok());  // no wrap-around
  EXPECT_EQ(budget.used(), 0u);
  MemoryBudget unlimited(0, "uploads", "--max_x");
  MemoryReservation d(&unlimited);
  EXPECT_TRUE(d.Grow(uint64_t{1} << 60).ok());
}

}  // namespace
}  // namespace twinserve
