#include "server/common/tensor.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

TEST(DataTypeTest, ParsesEveryTorchCompatibleOipType) {
  for (const char* name : {"BOOL", "UINT8", "INT8", "INT16", "INT32", "INT64",
                           "FP16", "BF16", "FP32", "FP64"}) {
    auto t = ParseDataType(name);
    ASSERT_TRUE(t.ok()) << name;
    EXPECT_STREQ(DataTypeName(*t), name);
    EXPECT_GT(DataTypeSize(*t), 0u);
  }
  EXPECT_EQ(DataTypeSize(DataType::kFp64), 8u);
  EXPECT_EQ(DataTypeSize(DataType::kBf16), 2u);
}

TEST(DataTypeTest, RefusesUnknownAndUnsupportedTypes) {
  auto t = ParseDataType("UINT32");
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("LibTorch has no such"));
  t = ParseDataType("float");
  EXPECT_THAT(t.status().message(), HasSubstr("unknown datatype 'float'"));
}

TEST(ShapeTest, ElementCountAndOverflow) {
  EXPECT_EQ(ElementCount({}), 1);
  EXPECT_EQ(ElementCount({2, 3, 4}), 24);
  EXPECT_EQ(ElementCount({2, 0}), 0);
  EXPECT_EQ(ElementCount({-1, 3}), -1);
  EXPECT_EQ(ElementCount({int64_t{1} << 40, int64_t{1} << 40}), -1);
  EXPECT_EQ(ShapeToString({1, -1}), "[1, -1]");
}

TEST(ShapeTest, ByteCountRefusesProductsThatWrap) {
  EXPECT_EQ(ByteCount({2, 3}, DataType::kFp32), 24);
  EXPECT_EQ(ByteCount({-1}, DataType::kFp32), -1);
  // 2^62 elements fit an int64; their 2^64 bytes do not (and would wrap to
  // 0 in uint64).
  EXPECT_EQ(ByteCount({int64_t{1} << 62}, DataType::kFp32), -1);
  EXPECT_EQ(ByteCount({int64_t{1} << 62}, DataType::kUint8), int64_t{1} << 62);
}

// A free dim of 2^62 with an empty payload: the byte check once wrapped.
TEST(ValidateTensorTest, RefusesShapesWhoseByteSizeOverflows) {
  TensorSpec spec{"x", DataType::kFp32, {-1}};
  HostTensor t =
      HostTensor::Borrowed("x", DataType::kFp32, {int64_t{1} << 62}, "", 0);
  absl::Status st = ValidateTensor(spec, t);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("overflows"));
}

TEST(TensorSpecTest, MatchesFreeDimsOnly) {
  TensorSpec spec{"x", DataType::kFp32, {-1, 3}};
  EXPECT_TRUE(spec.Matches({5, 3}));
  EXPECT_FALSE(spec.Matches({5, 4}));
  EXPECT_FALSE(spec.Matches({3}));
  EXPECT_EQ(spec.Example(2), (Shape{2, 3}));
  EXPECT_TRUE(ValidateSpec(spec).ok());
  EXPECT_FALSE(ValidateSpec({"x", DataType::kFp32, {0}}).ok());
  EXPECT_FALSE(ValidateSpec({"x", DataType::kFp32, {-2}}).ok());
  EXPECT_FALSE(ValidateSpec({"", DataType::kFp32, {1}}).ok());
}

TEST(ValidateTensorTest, ChecksDtypeShapeAndBytes) {
  TensorSpec spec{"x", DataType::kFp32, {-1, 2}};
  HostTensor ok =
      HostTensor::Owned("x", DataType::kFp32, {3, 2}, std::string(24, '\0'));
  EXPECT_TRUE(ValidateTensor(spec, ok).ok());
  HostTensor bytes =
      HostTensor::Owned("x", DataType::kFp32, {3, 2}, std::string(20, '\0'));
  EXPECT_THAT(ValidateTensor(spec, bytes).message(),
              HasSubstr("needs 24 bytes, got 20"));
  HostTensor dtype =
      HostTensor::Owned("x", DataType::kInt32, {3, 2}, std::string(24, '\0'));
  EXPECT_THAT(ValidateTensor(spec, dtype).message(),
              HasSubstr("expected datatype FP32, got INT32"));
}

}  // namespace
}  // namespace twinserve
