// A full disk (a small tmpfs) and a read-only store: writes fail with a
// clear error and corrupt nothing, inference keeps working, and a rollback
// takes effect in memory when the disk refuses it and is written once the
// disk accepts it again. Needs root to mount a tmpfs; skipped (saying so)
// where mounting is not allowed.

#include <sys/mount.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::AddSubOptions;
using ::twinserve::testing::FashionOptions;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::QuantizeAndWait;
using ::twinserve::testing::RandomImages;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

namespace fs = std::filesystem;

class Tmpfs {
 public:
  explicit Tmpfs(const std::string& size) : dir_(NewTempDir("tmpfs")) {
    const std::string opts = "size=" + size;
    mounted_ = mount("tmpfs", dir_.c_str(), "tmpfs", 0, opts.c_str()) == 0;
    if (!mounted_) error_ = std::strerror(errno);
  }
  ~Tmpfs() {
    if (mounted_) umount2(dir_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::string& dir() const { return dir_; }
  bool Remount(bool read_only) {
    return mount("tmpfs", dir_.c_str(), "tmpfs",
                 MS_REMOUNT | (read_only ? MS_RDONLY : 0), nullptr) == 0;
  }

 private:
  std::string dir_;
  bool mounted_ = false;
  std::string error_;
};

// Fills the file system until it refuses a byte more.
void Fill(const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  const std::string block(1 << 16, 'x');
  while (f.write(block.data(), block.size())) {
  }
}

// "f" with an int8 variant and a weighted policy to roll back from.
void Prepare(TwinClient& client) {
  ASSERT_TRUE(client
                  .Register(FashionOptions("f"),
                            ReadFileOrDie(FixturePath("fashion_cnn.pt")))
                  .ok());
  ASSERT_TRUE(
      client.UploadCalibration("f", "calib", {RandomImages(32, 1)}, {}, false)
          .ok());
  absl::Status quantized = QuantizeAndWait(client, "f");
  ASSERT_TRUE(quantized.ok()) << quantized;
  v1::SetTrafficPolicyRequest req;
  req.set_model("f");
  req.mutable_policy()->set_kind("weighted");
  (*req.mutable_policy()->mutable_weights())["fp32"] = 50;
  (*req.mutable_policy()->mutable_weights())["int8"] = 50;
  ASSERT_TRUE(client.SetPolicy(req).ok());
}

// The disk refuses: writes fail clearly, inference serves, a rollback takes
// effect now and is written when the disk accepts it; a restart then finds
// it and everything acknowledged.
void RefusingDisk(bool read_only) {
  Tmpfs fs_(read_only ? "64m" : "16m");
  if (!fs_.mounted()) {
    GTEST_SKIP() << "cannot mount a tmpfs here (" << fs_.error()
                 << "): needs root with CAP_SYS_ADMIN";
  }
  const std::string store = fs_.dir() + "/store";
  const std::string filler = fs_.dir() + "/filler";
  uint64_t rolled_back_version = 0;
  {
    ServerProcess server(store);
    TwinClient client(server.address());
    Prepare(client);
    if (::testing::Test::HasFatalFailure()) return;
    if (read_only) {
      ASSERT_TRUE(fs_.Remount(true)) << std::strerror(errno);
    } else {
      Fill(filler);
    }
    auto refused = client.Register(AddSubOptions("g"),
                                   ReadFileOrDie(FixturePath("add_sub.pt")));
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(),
              read_only ? absl::StatusCode::kFailedPrecondition
                        : absl::StatusCode::kResourceExhausted)
        << refused.status();
    EXPECT_THAT(std::string(refused.status().message()),
                HasSubstr(read_only ? "Read-only file system"
                                    : "No space left on device"));
    auto upload =
        client.UploadCalibration("f", "more", {RandomImages(64, 2)}, {}, false);
    EXPECT_FALSE(upload.ok());
    for (int i = 0; i < 20; ++i) {
      EXPECT_TRUE(client.Infer("f", {RandomImages(1, i)}).ok());
    }
    // The operator rolls back at 3 a.m. on a full disk: it takes effect.
    v1::RollbackRequest rb;
    rb.set_model("f");
    rb.set_reason("int8 misbehaves");
    auto rolled = client.Rollback(rb);
    ASSERT_TRUE(rolled.ok()) << rolled.status();
    EXPECT_EQ(rolled->kind(), "pinned");
    rolled_back_version = rolled->version();
    for (int i = 0; i < 20; ++i) {
      auto out = client.Infer("f", {RandomImages(1, i)});
      ASSERT_TRUE(out.ok());
      EXPECT_EQ(out->version, rolled->baseline());
    }
    // The disk accepts writes again: the rollback is written within ticks.
    if (read_only) {
      ASSERT_TRUE(fs_.Remount(false)) << std::strerror(errno);
    } else {
      fs::remove(filler);
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
    EXPECT_THAT(ReadFileOrDie(server.log_path()), HasSubstr("is written now"));
    server.Kill9();  // no clean shutdown: only what is on disk counts
  }
  ServerProcess server(store);
  TwinClient client(server.address());
  auto policy = client.GetPolicy("f");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->version(), rolled_back_version);
  EXPECT_EQ(policy->kind(), "pinned");
  auto info = client.Get("f");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->variants_size(), 2);
  for (const auto& v : info->variants()) EXPECT_EQ(v.state(), v1::READY);
  EXPECT_TRUE(client.Infer("f", {RandomImages(1, 5)}, "int8").ok());
  EXPECT_FALSE(client.Get("g").ok());
}

TEST(DiskE2eTest, FullDisk) { RefusingDisk(false); }
TEST(DiskE2eTest, ReadOnlyStore) { RefusingDisk(true); }

}  // namespace
}  // namespace twinserve
