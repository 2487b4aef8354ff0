#include "server/runtime/tensor_codec.h"

#include <ATen/ATen.h>

#include <cstring>

#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(TensorCodecTest, AlignedBytesAreWrappedWithoutCopy) {
  alignas(16) float data[6] = {1, 2, 3, 4, 5, 6};
  HostTensor t;
  t.dtype = DataType::kFp32;
  t.shape = {2, 3};
  t.data = reinterpret_cast<const char*>(data);
  t.byte_size = sizeof(data);
  ASSERT_TRUE(CanWrapWithoutCopy(t));
  auto at = ToTorch(t);
  ASSERT_TRUE(at.ok());
  EXPECT_EQ(at->data_ptr(), static_cast<void*>(data));
  EXPECT_EQ(at->sizes(), at::IntArrayRef({2, 3}));
  EXPECT_EQ(at->index({1, 2}).item<float>(), 6.0f);
}

TEST(TensorCodecTest, MisalignedBytesAreCopied) {
  alignas(16) char buf[1 + 4 * sizeof(float)];
  float values[4] = {1, 2, 3, 4};
  std::memcpy(buf + 1, values, sizeof(values));
  HostTensor t;
  t.dtype = DataType::kFp32;
  t.shape = {4};
  t.data = buf + 1;
  t.byte_size = sizeof(values);
  EXPECT_FALSE(CanWrapWithoutCopy(t));
  auto at = ToTorch(t);
  ASSERT_TRUE(at.ok());
  EXPECT_NE(at->data_ptr(), static_cast<void*>(buf + 1));
  EXPECT_EQ(at->index({3}).item<float>(), 4.0f);
}

TEST(TensorCodecTest, FromTorchOwnsAContiguousCopyOfViews) {
  at::Tensor base = at::arange(12, at::kLong).reshape({3, 4});
  auto out = FromTorch("y", base.t());  // a non-contiguous view
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->dtype, DataType::kInt64);
  EXPECT_EQ(out->shape, (Shape{4, 3}));
  EXPECT_EQ(reinterpret_cast<const int64_t*>(out->data)[1], 4);
  base.reset();
  EXPECT_EQ(reinterpret_cast<const int64_t*>(out->data)[11], 11);
}

TEST(TensorCodecTest, EveryDatatypeMapsBothWays) {
  for (DataType d :
       {DataType::kBool, DataType::kUint8, DataType::kInt8, DataType::kInt16,
        DataType::kInt32, DataType::kInt64, DataType::kFp16, DataType::kBf16,
        DataType::kFp32, DataType::kFp64}) {
    auto s = ToScalarType(d);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(*FromScalarType(*s), d);
    EXPECT_EQ(c10::elementSize(*s), DataTypeSize(d));
  }
  EXPECT_FALSE(FromScalarType(at::kComplexFloat).ok());
  EXPECT_FALSE(FromTorch("q", at::quantize_per_tensor(at::ones({2}), 0.1, 0,
                                                      at::kQUInt8))
                   .ok());
}

}  // namespace
}  // namespace twinserve
