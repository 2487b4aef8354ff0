#include "server/common/tokens.h"

#include <fstream>

#include "gtest/gtest.h"
#include "server/common/file_util.h"

namespace twinserve {
namespace {

std::string Line(const std::string& name, const std::string& role,
                 const std::string& token) {
  return name + " " + role + " sha256:" + TokenDigest(token) + "\n";
}

TEST(TokensTest, RolesAndRefusals) {
  const std::string dir = testing::TempDir();
  const std::string path = dir + "/tokens";
  ASSERT_TRUE(WriteFileAtomically(path, "# who may call\n" +
                                            Line("alice", "admin", "s3cret") +
                                            Line("web", "infer", "w3b"))
                  .ok());
  auto auth = TokenAuthenticator::Load(path);
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_EQ((*auth)->size(), 2u);

  auto p = (*auth)->Authorize("Bearer s3cret", Role::kAdmin);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->name, "alice");
  EXPECT_TRUE((*auth)->Authorize("Bearer w3b", Role::kInfer).ok());
  auto denied = (*auth)->Authorize("Bearer w3b", Role::kAdmin);
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(denied.status().message().find("'web' has role infer"),
            std::string::npos);
  for (const char* bad :
       {"", "Bearer", "Bearer nope", "Basic s3cret", "s3cret"}) {
    auto r = (*auth)->Authorize(bad, Role::kInfer);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << bad;
    EXPECT_EQ(r.status().message().find("s3cret"), std::string::npos);
  }

  // Reload: new tokens in force, old ones gone; a broken file keeps both.
  ASSERT_TRUE(WriteFileAtomically(path, Line("bob", "admin", "n3w")).ok());
  ASSERT_TRUE((*auth)->Reload().ok());
  EXPECT_TRUE((*auth)->Authorize("Bearer n3w", Role::kAdmin).ok());
  EXPECT_FALSE((*auth)->Authorize("Bearer s3cret", Role::kInfer).ok());
  ASSERT_TRUE(WriteFileAtomically(path, "bob root sha256:00\n").ok());
  EXPECT_EQ((*auth)->Reload().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*auth)->Authorize("Bearer n3w", Role::kAdmin).ok());
}

TEST(TokensTest, ParseErrorsNameTheLine) {
  auto r = ParseTokenFile("ok admin sha256:" + std::string(64, 'a') +
                          "\nbad superuser sha256:" + std::string(64, 'a'));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("line 2"), std::string::npos);
  EXPECT_FALSE(ParseTokenFile("x admin 1234").ok());
  EXPECT_FALSE(ParseTokenFile("x admin").ok());
  EXPECT_TRUE(ParseTokenFile("# only comments\n\n").ok());
}

}  // namespace
}  // namespace twinserve
