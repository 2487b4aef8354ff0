#include "server/grpc/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

// A shm object of `size` bytes holding 0, 1, 2, ...; removed at the end.
class ShmObject {
 public:
  explicit ShmObject(size_t size)
      : key_("/twinserve_test_" + std::to_string(getpid())) {
    int fd = shm_open(key_.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(ftruncate(fd, size), 0);
    std::string bytes(size, '\0');
    for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<char>(i);
    EXPECT_EQ(write(fd, bytes.data(), size), static_cast<ssize_t>(size));
    close(fd);
  }
  ~ShmObject() { shm_unlink(key_.c_str()); }
  const std::string& key() const { return key_; }

 private:
  std::string key_;
};

TEST(SharedMemoryTest, RegisteredRegionsAreReadAndWrittenInPlace) {
  ShmObject object(64);
  SharedMemoryManager shm;
  ASSERT_TRUE(shm.Register({"alice", "in", object.key(), 16, 32}).ok());
  auto view = shm.View("alice", "in", 4, 8);
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->byte_size, 8u);
  EXPECT_EQ(view->data[0], 20);  // region offset 16 + view offset 4
  view->data[1] = 99;            // writes land in the object
  auto again = shm.View("alice", "in", 5, 1);
  EXPECT_EQ(again->data[0], 99);

  auto status = shm.Status("alice", "");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->size(), 1u);
  EXPECT_EQ((*status)[0].key, object.key());
  EXPECT_EQ((*status)[0].byte_size, 32u);
}

TEST(SharedMemoryTest, BadRegistrationsAndRangesNameTheProblem) {
  ShmObject object(64);
  SharedMemoryManager shm;
  auto st = shm.Register({"alice", "r", "/twinserve_no_such_object", 0, 8});
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("'/twinserve_no_such_object'"));
  st = shm.Register({"alice", "r", object.key(), 60, 8});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("past the end"));
  EXPECT_EQ(shm.Register({"alice", "r", object.key(), 0, 0}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shm.Register({"alice", "", object.key(), 0, 8}).code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(shm.Register({"alice", "r", object.key(), 0, 8}).ok());
  EXPECT_EQ(shm.Register({"alice", "r", object.key(), 0, 8}).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(shm.View("alice", "r", 4, 5).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(shm.View("alice", "other", 0, 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(shm.Status("alice", "other").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SharedMemoryTest, UnregisterKeepsPinnedViewsMapped) {
  ShmObject object(64);
  SharedMemoryManager shm;
  ASSERT_TRUE(shm.Register({"alice", "a", object.key(), 0, 64}).ok());
  ASSERT_TRUE(shm.Register({"alice", "b", object.key(), 0, 64}).ok());
  auto view = shm.View("alice", "a", 0, 64);
  ASSERT_TRUE(view.ok());
  shm.Unregister("alice", "a");
  EXPECT_EQ(shm.View("alice", "a", 0, 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(view->data[63], 63);       // still mapped for the request using it
  shm.Unregister("alice", "nothing");  // unknown names are fine
  shm.Unregister("alice", "");         // everything
  EXPECT_TRUE(shm.Status("alice", "")->empty());
}

TEST(SharedMemoryTest, RegionsBelongToThePrincipalThatRegisteredThem) {
  ShmObject object(64);
  SharedMemoryManager shm;
  ASSERT_TRUE(shm.Register({"alice", "in", object.key(), 0, 64}).ok());
  // Bob has his own namespace: the same name is free, and Alice's region
  // can be neither seen, used nor removed by him.
  EXPECT_EQ(shm.View("bob", "in", 0, 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(shm.Status("bob", "in").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(shm.Status("bob", "")->empty());
  shm.Unregister("bob", "");
  shm.Unregister("bob", "in");
  EXPECT_TRUE(shm.View("alice", "in", 0, 1).ok());
  ASSERT_TRUE(shm.Register({"bob", "in", object.key(), 8, 8}).ok());
  EXPECT_EQ(shm.Status("alice", "in").value()[0].offset, 0u);
  EXPECT_EQ(shm.Status("bob", "in").value()[0].offset, 8u);
  shm.Unregister("alice", "");
  EXPECT_TRUE(shm.View("bob", "in", 0, 8).ok());
}

TEST(SharedMemoryTest, OnlyKeysUnderThePrefixAreMapped) {
  ShmObject object(64);  // "/twinserve_test_<pid>"
  SharedMemoryManager shm("/twinserve_");
  EXPECT_TRUE(shm.Register({"a", "r", object.key(), 0, 8}).ok());
  auto st = shm.Register({"a", "s", "/other_object", 0, 8});
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(st.message(), HasSubstr("'/twinserve_'"));
  // Keys that shm_open would resolve elsewhere are malformed, not merely
  // outside the prefix.
  for (const char* key : {"/twinserve_/../../etc/passwd", "twinserve_x", "/",
                          "/twinserve_a/b", ""}) {
    EXPECT_EQ(shm.Register({"a", "t", key, 0, 8}).code(),
              absl::StatusCode::kInvalidArgument)
        << key;
  }
}

}  // namespace
}  // namespace twinserve
