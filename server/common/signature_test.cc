#include "server/common/signature.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

Signature AddSub() {
  Signature s;
  s.inputs = {{"a", DataType::kFp32, {-1, 4}}, {"b", DataType::kFp32, {-1, 4}}};
  s.outputs = {{"sum", DataType::kFp32, {-1, 4}}};
  return s;
}

TEST(SignatureTest, ValidatesBothSides) {
  EXPECT_TRUE(ValidateSignature(AddSub()).ok());
  Signature none = AddSub();
  none.outputs.clear();
  EXPECT_THAT(ValidateSignature(none).message(), HasSubstr("no outputs"));
  Signature twice = AddSub();
  twice.inputs[1].name = "a";
  EXPECT_THAT(ValidateSignature(twice).message(),
              HasSubstr("input name 'a' is declared twice"));
  Signature bad_dim = AddSub();
  bad_dim.outputs[0].shape = {0, 4};
  EXPECT_EQ(ValidateSignature(bad_dim).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SignatureTest, SameInputsComparesNamesTypesShapesAndOrder) {
  Signature a = AddSub();
  Signature b = AddSub();
  b.outputs.push_back({"diff", DataType::kFp32, {-1, 4}});
  EXPECT_TRUE(SameInputs(a, b));  // outputs do not matter
  b.inputs[1].shape = {-1, 5};
  EXPECT_FALSE(SameInputs(a, b));
  b = AddSub();
  std::swap(b.inputs[0], b.inputs[1]);
  EXPECT_FALSE(SameInputs(a, b));
}

}  // namespace
}  // namespace twinserve
