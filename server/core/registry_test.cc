#include "server/core/registry.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/core/test_util/core_fixture.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::AddSubArgs;
using ::twinserve::testing::CoreFixture;

TEST(RegistryTest, RegisterAcquireAndReloadFromStore) {
  CoreFixture f;
  ModelStatus st = f.RegisterAddSub("m");
  EXPECT_EQ(st.state, VariantState::kReady);
  EXPECT_EQ(st.generation, 1u);
  ASSERT_EQ(st.variants.size(), 1u);
  EXPECT_EQ(st.variants[0].name, "fp32");
  EXPECT_EQ(st.variants[0].execution_path, "frozen+optimized");
  auto a = f.registry->Acquire("m", "", "");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->served->variant, "fp32");
  EXPECT_EQ(a->served->registration_id, st.registration_id);
  EXPECT_EQ(a->comparison, nullptr);

  // A second registry over the same store sees the model.
  CoreFixture again(f.root);
  auto listed = again.registry->List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].state, VariantState::kReady);
  EXPECT_EQ(listed[0].registration_id, st.registration_id);
  EXPECT_TRUE(again.registry->Acquire("m", "fp32", "").ok());
}

TEST(RegistryTest, ReplaceIsANewRegistrationAndKeepsInFlightHandlesAlive) {
  CoreFixture f;
  const ModelStatus first = f.RegisterAddSub("m");
  ServableHandle old = f.registry->Acquire("m", "", "")->served;
  auto dup = f.registrar->Register(AddSubArgs("m"), f.Stage("add_sub.pt"));
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kAlreadyExists);
  RegisterArgs replace = AddSubArgs("m");
  replace.replace = true;
  auto st = f.registrar->Register(replace, f.Stage("add_sub.pt"));
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->generation, 2u);
  EXPECT_NE(st->registration_id, first.registration_id);
  ServableHandle fresh = f.registry->Acquire("m", "", "")->served;
  EXPECT_EQ(old->generation, 1u);  // still usable by its request
  EXPECT_EQ(fresh->generation, 2u);
  EXPECT_TRUE(ListDir(f.root + "/staging")->empty());
}

TEST(RegistryTest, KeepPreviousServesBothGenerationsWithTrafficOnTheOld) {
  CoreFixture f;
  f.RegisterAddSub("m");
  RegisterArgs next = AddSubArgs("m");
  next.replace = true;
  next.keep_previous = true;
  auto st = f.registrar->Register(next, f.Stage("add_sub.pt"));
  ASSERT_TRUE(st.ok()) << st.status();
  ASSERT_EQ(st->variants.size(), 2u);
  EXPECT_EQ(f.registry->Acquire("m", "", "")->served->variant, "fp32-g1");
  EXPECT_EQ(f.registry->Acquire("m", "fp32", "")->served->generation, 2u);
  auto history = f.registry->PolicyHistory("m");
  ASSERT_TRUE(history.ok());
  EXPECT_EQ(history->back().action, "reset");
  // Both survive a restart.
  CoreFixture again(f.root);
  EXPECT_TRUE(again.registry->Acquire("m", "fp32-g1", "").ok());
  EXPECT_EQ(again.registry->Acquire("m", "", "")->served->variant, "fp32-g1");
}

TEST(RegistryTest, ErrorsNameTheProblemAndStoreNothing) {
  CoreFixture f;
  auto bad = f.registrar->Register(AddSubArgs("x/y"), f.Stage("add_sub.pt"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  RegisterArgs dup = AddSubArgs("m");
  dup.signature.inputs[1].name = "a";
  bad = f.registrar->Register(dup, f.Stage("add_sub.pt"));
  EXPECT_THAT(bad.status().message(), HasSubstr("declared twice"));
  bad = f.registrar->Register(AddSubArgs("m"), f.Stage("not_a_model.pt"));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(f.registry->List().empty());
  EXPECT_TRUE(ListDir(f.root + "/staging")->empty());
  EXPECT_TRUE(ListDir(f.root + "/models")->empty());

  EXPECT_EQ(f.registry->Acquire("nope", "", "").status().code(),
            absl::StatusCode::kNotFound);
  f.RegisterAddSub("m");
  auto v = f.registry->Acquire("m", "int8", "");
  EXPECT_EQ(v.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(v.status().message(), HasSubstr("versions: fp32"));
}

TEST(RegistryTest, UnloadLoadUnregister) {
  CoreFixture f;
  f.RegisterAddSub("m");
  ASSERT_TRUE(f.registry->Unload("m").ok());
  EXPECT_EQ(f.registry->Acquire("m", "", "").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(f.registry->Get("m")->state, VariantState::kUnloaded);
  ASSERT_TRUE(f.registry->Load("m").ok());
  EXPECT_TRUE(f.registry->Acquire("m", "", "").ok());
  ASSERT_TRUE(f.registrar->Unregister("m").ok());
  EXPECT_EQ(f.registry->Get("m").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(f.registry->Load("m").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(f.registrar->Unregister("m").code(), absl::StatusCode::kNotFound);
}

TEST(RegistryTest, NothingIsWrittenBeforeTheStoredModelsLoad) {
  // Before, gRPC served while stored models were still loading, and a
  // registration of a stored name that had not loaded yet overwrote it.
  std::string root;
  std::string id;
  {
    CoreFixture f;
    root = f.root;
    id = f.RegisterAddSub("m").registration_id;
  }
  CoreFixture f(root, /*load=*/false);
  RegisterArgs again = AddSubArgs("m");
  again.replace = true;
  auto reg = f.registrar->Register(again, f.Stage("add_sub.pt"));
  EXPECT_EQ(reg.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(reg.status().message(), HasSubstr("loading"));
  EXPECT_EQ(f.traffic->Promote("m", "fp32", {}).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(f.registry->Acquire("m", "", "").status().code(),
            absl::StatusCode::kUnavailable);
  f.registry->LoadStoredModels();
  EXPECT_EQ(f.registry->Get("m")->registration_id, id);
  EXPECT_EQ(f.registrar->Register(AddSubArgs("m"), f.Stage("add_sub.pt"))
                .status()
                .code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(RegistryTest, OneDecisionGivesTheServedAndTheComparisonVariant) {
  CoreFixture f;
  f.RegisterAddSub("m");
  f.AddVariant("m", "alt");
  TrafficPolicy shadow;
  shadow.kind = PolicyKind::kShadow;
  shadow.candidate = "alt";
  ASSERT_TRUE(f.traffic->SetPolicy("m", shadow, {}).ok());
  auto a = f.registry->Acquire("m", "", "");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->served->variant, "fp32");
  ASSERT_NE(a->comparison, nullptr);
  EXPECT_EQ(a->comparison->variant, "alt");
  EXPECT_TRUE(a->served_is_baseline);
  // A named version bypasses the policy: no comparison.
  EXPECT_EQ(f.registry->Acquire("m", "fp32", "")->comparison, nullptr);
}

TEST(RegistryTest, ABatchingChangeGetsANewSchedulerAndKeepsTheStatistics) {
  CoreFixture f;
  f.RegisterAddSub("m");
  ServableHandle before = f.registry->Acquire("m", "", "")->served;
  BatchingConfig c;
  c.max_batch_size = 8;
  c.max_queue_delay_us = 100;
  ASSERT_TRUE(f.traffic->SetBatching("m", "", c, false).ok());
  ServableHandle after = f.registry->Acquire("m", "", "")->served;
  EXPECT_NE(before.get(), after.get());
  EXPECT_NE(before->scheduler.get(), after->scheduler.get());
  EXPECT_EQ(before->runner.get(), after->runner.get());
  EXPECT_EQ(before->stats.get(), after->stats.get());
  EXPECT_EQ(after->batching.max_batch_size, 8);
  EXPECT_EQ(f.registry->Get("m")->variants[0].batching.max_batch_size, 8);
}

}  // namespace
}  // namespace twinserve
