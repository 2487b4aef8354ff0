#include "server/core/store.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::NewTempDir;

ModelRecord Record(const std::string& name) {
  ModelRecord r;
  r.name = name;
  r.description = "d";
  r.signature.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  r.signature.outputs = {{"y", DataType::kInt64, {-1}}};
  return r;
}

StagedFile Stage(ModelStore* store, const std::string& bytes) {
  auto up = store->BeginUpload();
  EXPECT_TRUE(up.ok());
  EXPECT_TRUE((*up)->Append(bytes).ok());
  auto staged = (*up)->Finish();
  EXPECT_TRUE(staged.ok());
  return *staged;
}

TEST(StoreTest, PutScanRoundTripsTheManifest) {
  const std::string root = NewTempDir("store");
  auto store = ModelStore::Open(root);
  ASSERT_TRUE(store.ok());
  ModelRecord r = Record("m");
  r.generation = 1;
  ASSERT_TRUE((*store)->PutModel(&r, "fp32", Stage(store->get(), "abc")).ok());
  EXPECT_EQ(r.variants.at("fp32").bytes, 3u);
  EXPECT_EQ(r.variants.at("fp32").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  auto reopened = ModelStore::Open(root);
  auto all = (*reopened)->Scan();
  ASSERT_EQ(all.size(), 1u);
  ASSERT_TRUE(all[0].record.ok()) << all[0].record.status();
  const ModelRecord& got = *all[0].record;
  EXPECT_EQ(got.name, "m");
  EXPECT_EQ(got.generation, 1u);
  EXPECT_EQ(got.signature.outputs[0].dtype, DataType::kInt64);
  EXPECT_EQ(got.signature.inputs[0].shape, (Shape{-1, 4}));
  EXPECT_EQ(*ReadFile((*reopened)->VariantPath("m", got.variants.at("fp32"))),
            "abc");
}

TEST(StoreTest, NewGenerationDropsOldVariantsAndFiles) {
  const std::string root = NewTempDir("store");
  auto store = ModelStore::Open(root);
  ModelRecord r = Record("m");
  r.generation = 1;
  ASSERT_TRUE((*store)->PutModel(&r, "fp32", Stage(store->get(), "one")).ok());
  ASSERT_TRUE((*store)->PutVariant(&r, "int8", Stage(store->get(), "q")).ok());
  EXPECT_EQ(r.variants.size(), 2u);
  r.generation = 2;
  ASSERT_TRUE((*store)->PutModel(&r, "fp32", Stage(store->get(), "two")).ok());
  EXPECT_EQ(r.variants.size(), 1u);
  EXPECT_EQ(ListDir(root + "/models/m")->size(), 2u);  // manifest + fp32
  EXPECT_TRUE(ListDir(root + "/staging")->empty());
}

TEST(StoreTest, CorruptionAndGarbageAreReportedNotFatal) {
  const std::string root = NewTempDir("store");
  {
    auto store = ModelStore::Open(root);
    for (const char* name : {"a", "b", "c"}) {
      ModelRecord r = Record(name);
      ASSERT_TRUE(
          (*store)->PutModel(&r, "fp32", Stage(store->get(), name)).ok());
    }
  }
  // b: artifact changed; c: manifest garbage; a: stray file from a crash.
  auto b = ModelStore::Open(root);
  const auto files = ListDir(root + "/models/b");
  for (const auto& f : *files) {
    if (f != "manifest.json") {
      ASSERT_TRUE(WriteFileAtomically(root + "/models/b/" + f, "B").ok());
    }
  }
  ASSERT_TRUE(
      WriteFileAtomically(root + "/models/c/manifest.json", "{oops").ok());
  ASSERT_TRUE(WriteFileAtomically(root + "/models/a/stray.pt", "x").ok());
  ASSERT_TRUE(WriteFileAtomically(root + "/staging/left.upload", "x").ok());

  auto store = ModelStore::Open(root);
  EXPECT_TRUE(ListDir(root + "/staging")->empty());
  auto all = (*store)->Scan();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_TRUE(all[0].record.ok());
  EXPECT_FALSE(PathExists(root + "/models/a/stray.pt"));
  EXPECT_EQ(all[1].record.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all[1].record.status().message(), HasSubstr("checksum mismatch"));
  EXPECT_EQ(all[2].record.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all[2].record.status().message(), HasSubstr("corrupt"));
}

TEST(StoreTest, AbandonedUploadLeavesNothing) {
  const std::string root = NewTempDir("store");
  auto store = ModelStore::Open(root);
  {
    auto up = (*store)->BeginUpload();
    ASSERT_TRUE((*up)->Append("partial").ok());
  }
  EXPECT_TRUE(ListDir(root + "/staging")->empty());
}

TEST(StoreTest, RemoveModel) {
  const std::string root = NewTempDir("store");
  auto store = ModelStore::Open(root);
  ModelRecord r = Record("gone");
  ASSERT_TRUE((*store)->PutModel(&r, "fp32", Stage(store->get(), "x")).ok());
  ASSERT_TRUE((*store)->RemoveModel("gone").ok());
  EXPECT_TRUE((*store)->Scan().empty());
  EXPECT_EQ((*store)->RemoveModel("gone").code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(ListDir(root + "/trash")->empty());
}

TEST(StoreTest, ModelNames) {
  for (const char* ok : {"a", "resnet-18", "fashion_cnn.v2", "A9"}) {
    EXPECT_TRUE(ValidateModelName(ok).ok()) << ok;
  }
  for (const std::string& bad :
       {std::string(""), std::string("a/b"), std::string(".."),
        std::string("a..b"), std::string(".x"), std::string("a\x01"),
        std::string("a b"), std::string(129, 'x'), std::string("a\\b")}) {
    EXPECT_EQ(ValidateModelName(bad).code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

}  // namespace
}  // namespace twinserve
