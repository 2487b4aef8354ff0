#include "client/npy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(NpyTest, RoundTripsEveryNumpyType) {
  for (DataType d : {DataType::kBool, DataType::kUint8, DataType::kInt8,
                     DataType::kInt16, DataType::kInt32, DataType::kInt64,
                     DataType::kFp16, DataType::kFp32, DataType::kFp64}) {
    const Shape shape = {2, 3};
    std::string bytes(6 * DataTypeSize(d), '\0');
    for (size_t i = 0; i < bytes.size(); ++i)
      bytes[i] = d == DataType::kBool ? i % 2 : i;
    HostTensor t = HostTensor::Owned("t", d, shape, bytes);
    auto npy = SerializeNpy(t);
    ASSERT_TRUE(npy.ok());
    EXPECT_EQ((npy->size() - bytes.size()) % 64, 0u) << "data is 64-aligned";
    auto back = ParseNpy(*npy, "t");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->dtype, d);
    EXPECT_EQ(back->shape, shape);
    EXPECT_EQ(std::string(back->data, back->byte_size), bytes);
  }
}

TEST(NpyTest, ParsesWhatNumpyWrites) {
  // np.save of np.arange(3, dtype=np.int64): a 1-D shape written "(3,)".
  std::string header =
      "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
  header.append(118 - header.size() - 1, ' ');
  header.push_back('\n');
  std::string file = std::string("\x93NUMPY\x01\x00", 8);
  file.push_back(static_cast<char>(header.size()));
  file.push_back(0);
  file += header;
  int64_t values[3] = {0, 1, 2};
  file.append(reinterpret_cast<char*>(values), sizeof(values));
  auto t = ParseNpy(file, "x");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->shape, (Shape{3}));
  EXPECT_EQ(reinterpret_cast<const int64_t*>(t->data)[2], 2);
  // Scalars have shape ().
  std::string scalar = file;
  scalar.replace(scalar.find("(3,)"), 4, "()  ");
  auto s = ParseNpy(scalar, "x");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->shape.empty());
}

TEST(NpyTest, RefusesBadFiles) {
  EXPECT_FALSE(ParseNpy("hello", "x").ok());
  HostTensor t =
      HostTensor::Owned("t", DataType::kFp32, {4}, std::string(16, 0));
  std::string npy = *SerializeNpy(t);
  EXPECT_THAT(ParseNpy(npy.substr(0, npy.size() - 4), "x").status().message(),
              ::testing::HasSubstr("truncated"));
  std::string fortran = npy;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_THAT(ParseNpy(fortran, "x").status().message(),
              ::testing::HasSubstr("Fortran"));
  HostTensor bf =
      HostTensor::Owned("t", DataType::kBf16, {1}, std::string(2, 0));
  EXPECT_FALSE(SerializeNpy(bf).ok());
}

}  // namespace
}  // namespace twinserve
