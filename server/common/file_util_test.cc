#include "server/common/file_util.h"

#include <cstdlib>

#include "gtest/gtest.h"

namespace twinserve {
namespace {

std::string TestDir(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  const std::string dir = JoinPath(t ? t : "/tmp", name);
  RemoveAll(dir).IgnoreError();
  EXPECT_TRUE(MakeDirs(dir).ok());
  return dir;
}

TEST(FileUtilTest, AtomicWriteReplacesAndLeavesNoTempFiles) {
  const std::string dir = TestDir("atomic");
  const std::string path = JoinPath(dir, "f");
  ASSERT_TRUE(WriteFileAtomically(path, "one").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two").ok());
  EXPECT_EQ(*ReadFile(path), "two");
  EXPECT_EQ(ListDir(dir)->size(), 1u);
}

TEST(FileUtilTest, Sha256KnownVectors) {
  Sha256 empty;
  EXPECT_EQ(empty.HexDigest(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Sha256 abc;
  abc.Update("a");
  abc.Update("bc");
  EXPECT_EQ(abc.HexDigest(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string dir = TestDir("sha");
  ASSERT_TRUE(WriteFileAtomically(JoinPath(dir, "abc"), "abc").ok());
  EXPECT_EQ(*Sha256File(JoinPath(dir, "abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(FileUtilTest, MakeDirsRenameRemoveAll) {
  const std::string dir = TestDir("tree");
  const std::string deep = JoinPath(dir, "a/b/c");
  ASSERT_TRUE(MakeDirs(deep).ok());
  ASSERT_TRUE(WriteFileAtomically(JoinPath(deep, "x"), "x").ok());
  ASSERT_TRUE(DurableRename(JoinPath(dir, "a"), JoinPath(dir, "z")).ok());
  EXPECT_TRUE(PathExists(JoinPath(dir, "z/b/c/x")));
  ASSERT_TRUE(RemoveAll(JoinPath(dir, "z")).ok());
  EXPECT_FALSE(PathExists(JoinPath(dir, "z")));
  EXPECT_TRUE(RemoveAll(JoinPath(dir, "never")).ok());
  EXPECT_EQ(ReadFile(JoinPath(dir, "never")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(FileUtilTest, AppendFileCountsAndPersists) {
  const std::string dir = TestDir("append");
  auto f = AppendFile::Create(JoinPath(dir, "up"));
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append("hello ").ok());
  ASSERT_TRUE((*f)->Append("world").ok());
  EXPECT_EQ((*f)->size(), 11u);
  ASSERT_TRUE((*f)->Close().ok());
  EXPECT_EQ(*ReadFile(JoinPath(dir, "up")), "hello world");
}

}  // namespace
}  // namespace twinserve
