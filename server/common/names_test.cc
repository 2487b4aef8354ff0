#include "server/common/names.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

TEST(NamesTest, AcceptsWhatIsSafeAsAFileNameAndALabel) {
  for (const char* ok :
       {"m", "fashion", "int8-dynamic", "fp32-g2", "a_b.c", "A9"}) {
    EXPECT_TRUE(ValidateName(ok).ok()) << ok;
  }
  EXPECT_TRUE(ValidateName(std::string(128, 'x')).ok());
}

TEST(NamesTest, RefusalsSayWhatIsWrong) {
  EXPECT_THAT(ValidateName("").message(), HasSubstr("empty"));
  EXPECT_THAT(ValidateName(std::string(129, 'x')).message(),
              HasSubstr("129 characters"));
  EXPECT_THAT(ValidateName("a/b").message(), HasSubstr("path separator"));
  EXPECT_THAT(ValidateName("a\\b").message(), HasSubstr("path separator"));
  EXPECT_THAT(ValidateName("x..y").message(), HasSubstr("'..'"));
  EXPECT_THAT(ValidateName(".hidden").message(), HasSubstr("starts with"));
  EXPECT_THAT(ValidateName("tab\there").message(), HasSubstr("control"));
  EXPECT_THAT(ValidateName("sp ace").message(), HasSubstr("contains ' '"));
  EXPECT_THAT(ValidateName("", "variant name").message(),
              HasSubstr("variant name is empty"));
  EXPECT_EQ(ValidateName("a b").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace twinserve
