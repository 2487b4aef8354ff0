#include "quant/calibration_set.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

Signature Sig() {
  Signature s;
  s.inputs = {{"x", DataType::kFp32, {-1, 2}}, {"ids", DataType::kInt64, {-1}}};
  return s;
}

HostTensor X(int64_t n, float v) {
  std::vector<float> f(n * 2, v);
  return HostTensor::Owned(
      "x", DataType::kFp32, {n, 2},
      std::string(reinterpret_cast<char*>(f.data()), f.size() * 4));
}
HostTensor Ids(int64_t n) {
  return HostTensor::Owned("ids", DataType::kInt64, {n},
                           std::string(n * 8, '\x01'));
}

TEST(CalibrationSetTest, AppendSliceSerializeParse) {
  auto set = CalibrationSet::ForSignature(Sig(), "calib");
  ASSERT_TRUE(set.ok());
  ASSERT_TRUE(set->Append({Ids(3), X(3, 1.0f)}, {0, 1, 2}, {}).ok());
  ASSERT_TRUE(set->Append({X(2, 2.0f), Ids(2)}, {3, 4}, {}).ok());
  EXPECT_EQ(set->num_samples(), 5);
  auto slice = set->Slice(2, 4);
  EXPECT_EQ(slice[0].shape, (Shape{2, 2}));
  EXPECT_EQ(reinterpret_cast<const float*>(slice[0].data)[0], 1.0f);
  EXPECT_EQ(reinterpret_cast<const float*>(slice[0].data)[2], 2.0f);
  auto back = CalibrationSet::Parse(set->Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->num_samples(), 5);
  EXPECT_EQ(back->labels(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(back->byte_size(), set->byte_size());
  EXPECT_EQ(back->Slice(4, 5)[1].byte_size, 8u);
  EXPECT_EQ(CalibrationSet::Parse("garbage").status().code(),
            absl::StatusCode::kDataLoss);
}

// Found by calibration_set_fuzz: a header whose sizes disagree with its
// shapes made Slice read past the data.
TEST(CalibrationSetTest, ParseRefusesSizesThatDisagreeWithShapes) {
  auto set = CalibrationSet::ForSignature(Sig(), "calib");
  ASSERT_TRUE(set.ok());
  ASSERT_TRUE(set->Append({Ids(3), X(3, 1.0f)}, {0, 1, 2}, {}).ok());
  const std::string good = set->Serialize();
  ASSERT_TRUE(CalibrationSet::Parse(good).ok());
  auto edit = [&](const std::string& from, const std::string& to) {
    std::string b = good;
    const size_t at = b.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) b.replace(at, from.size(), to);
    return CalibrationSet::Parse(b).status();
  };
  // Same header length, so only the claim changes.
  EXPECT_THAT(edit("\"bytes\":24", "\"bytes\":16").message(),
              HasSubstr("do not hold 3 samples"));
  EXPECT_THAT(edit("\"sample_shape\":[2]", "\"sample_shape\":[3]").message(),
              HasSubstr("does not fit"));
  EXPECT_EQ(edit("\"num_samples\":3", "\"num_samples\":9").code(),
            absl::StatusCode::kDataLoss);
  EXPECT_THAT(CalibrationSet::Parse(good + "x").status().message(),
              HasSubstr("after the end"));
  EXPECT_THAT(
      CalibrationSet::Parse(good.substr(0, good.size() - 1)).status().message(),
      HasSubstr("truncated"));
}

TEST(CalibrationSetTest, RefusesWhatDoesNotFit) {
  auto set = CalibrationSet::ForSignature(Sig(), "calib");
  EXPECT_THAT(set->Append({X(3, 0)}, {}, {}).message(),
              HasSubstr("1 tensors; the model has 2"));
  EXPECT_THAT(set->Append({X(3, 0), Ids(2)}, {}, {}).message(),
              HasSubstr("holds 2 samples"));
  EXPECT_THAT(set->Append({X(3, 0), Ids(3)}, {1}, {}).message(),
              HasSubstr("1 labels for 3 samples"));
  CalibrationLimits limits;
  limits.max_samples = 4;
  ASSERT_TRUE(set->Append({X(3, 0), Ids(3)}, {}, limits).ok());
  auto st = set->Append({X(3, 0), Ids(3)}, {}, limits);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(set->num_samples(), 3);
  EXPECT_THAT(set->Append({X(1, 0), Ids(1)}, {7}, {}).message(),
              HasSubstr("or none"));
  Signature fixed;
  fixed.inputs = {{"x", DataType::kFp32, {1, 2}}};
  EXPECT_EQ(CalibrationSet::ForSignature(fixed, "c").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace twinserve
