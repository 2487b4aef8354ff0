#include "server/core/registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;

RegisterArgs AddSubArgs(const std::string& name) {
  RegisterArgs a;
  a.name = name;
  a.signature.inputs = {{"a", DataType::kFp32, {-1, 4}},
                        {"b", DataType::kFp32, {-1, 4}}};
  a.signature.outputs = {{"sum", DataType::kFp32, {-1, 4}},
                         {"diff", DataType::kFp32, {-1, 4}}};
  return a;
}

StagedFile Stage(ModelStore* store, const std::string& fixture) {
  auto up = store->BeginUpload();
  EXPECT_TRUE((*up)->Append(ReadFileOrDie(FixturePath(fixture))).ok());
  return *(*up)->Finish();
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = NewTempDir("store");
    store_ = *ModelStore::Open(root_);
    registry_ = std::make_unique<ModelRegistry>(store_.get(), RunnerOptions{});
  }
  std::string root_;
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<ModelRegistry> registry_;
};

TEST_F(RegistryTest, RegisterAcquireAndReloadFromStore) {
  auto st =
      registry_->Register(AddSubArgs("m"), Stage(store_.get(), "add_sub.pt"));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->state, VariantState::kReady);
  EXPECT_EQ(st->generation, 1u);
  ASSERT_EQ(st->variants.size(), 1u);
  EXPECT_EQ(st->variants[0].name, "fp32");
  EXPECT_EQ(st->variants[0].execution_path, "frozen+optimized");
  auto h = registry_->Acquire("m", "");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ((*h)->variant, "fp32");

  // A second registry over the same store sees the model.
  ModelRegistry again(store_.get(), RunnerOptions{});
  again.LoadStoredModels();
  auto listed = again.List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].state, VariantState::kReady);
  EXPECT_TRUE(again.Acquire("m", "fp32").ok());
}

TEST_F(RegistryTest, ReplaceKeepsInFlightHandlesAlive) {
  ASSERT_TRUE(
      registry_->Register(AddSubArgs("m"), Stage(store_.get(), "add_sub.pt"))
          .ok());
  ServableHandle old = *registry_->Acquire("m", "");
  auto dup =
      registry_->Register(AddSubArgs("m"), Stage(store_.get(), "add_sub.pt"));
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  RegisterArgs replace = AddSubArgs("m");
  replace.replace = true;
  auto st = registry_->Register(replace, Stage(store_.get(), "add_sub.pt"));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->generation, 2u);
  ServableHandle fresh = *registry_->Acquire("m", "");
  EXPECT_EQ(old->generation, 1u);  // still usable by its request
  EXPECT_EQ(fresh->generation, 2u);
  EXPECT_TRUE(ListDir(root_ + "/staging")->empty());
}

TEST_F(RegistryTest, ErrorsNameTheProblem) {
  auto bad =
      registry_->Register(AddSubArgs("x/y"), Stage(store_.get(), "add_sub.pt"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  RegisterArgs dup = AddSubArgs("m");
  dup.signature.inputs[1].name = "a";
  bad = registry_->Register(dup, Stage(store_.get(), "add_sub.pt"));
  EXPECT_THAT(bad.status().message(), HasSubstr("declared twice"));
  bad = registry_->Register(AddSubArgs("m"),
                            Stage(store_.get(), "not_a_model.pt"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(registry_->List().empty());
  EXPECT_TRUE(ListDir(root_ + "/staging")->empty());
  EXPECT_TRUE(ListDir(root_ + "/models")->empty());

  EXPECT_EQ(registry_->Acquire("nope", "").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(
      registry_->Register(AddSubArgs("m"), Stage(store_.get(), "add_sub.pt"))
          .ok());
  auto v = registry_->Acquire("m", "int8");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("versions: fp32"));
}

TEST_F(RegistryTest, UnloadLoadUnregister) {
  ASSERT_TRUE(
      registry_->Register(AddSubArgs("m"), Stage(store_.get(), "add_sub.pt"))
          .ok());
  ASSERT_TRUE(registry_->Unload("m").ok());
  EXPECT_EQ(registry_->Acquire("m", "").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(registry_->Get("m")->state, VariantState::kUnloaded);
  ASSERT_TRUE(registry_->Load("m").ok());
  EXPECT_TRUE(registry_->Acquire("m", "").ok());
  ASSERT_TRUE(registry_->Unregister("m").ok());
  EXPECT_EQ(registry_->Get("m").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(registry_->Load("m").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace twinserve
