#include "server/core/inference.h"

#include <cstring>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

HostTensor Floats(const std::string& name, Shape shape, float v) {
  const int64_t n = ElementCount(shape);
  std::vector<float> values(n, v);
  std::string bytes(n * 4, '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return HostTensor::Owned(name, DataType::kFp32, shape, bytes);
}

Signature TwoInputs() {
  Signature s;
  s.inputs = {{"a", DataType::kFp32, {-1, 4}}, {"b", DataType::kFp32, {-1, 4}}};
  s.outputs = {{"sum", DataType::kFp32, {-1, 4}}};
  return s;
}

TEST(MatchInputsTest, OrdersByDeclaration) {
  auto m = MatchInputs(TwoInputs(),
                       {Floats("b", {1, 4}, 2), Floats("a", {1, 4}, 1)});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)[0].name, "a");
  EXPECT_EQ((*m)[1].name, "b");
}

TEST(MatchInputsTest, UnknownMissingAndDuplicateInputs) {
  auto m = MatchInputs(TwoInputs(), {Floats("c", {1, 4}, 0)});
  EXPECT_THAT(m.status().message(), HasSubstr("unknown input 'c'"));
  EXPECT_THAT(m.status().message(), HasSubstr("inputs are a, b"));
  m = MatchInputs(TwoInputs(), {Floats("a", {1, 4}, 0)});
  EXPECT_THAT(m.status().message(), HasSubstr("missing input 'b'"));
  m = MatchInputs(TwoInputs(),
                  {Floats("a", {1, 4}, 0), Floats("a", {1, 4}, 0)});
  EXPECT_THAT(m.status().message(), HasSubstr("given twice"));
}

TEST(InferenceEngineTest, ConcurrentRequestsAndStats) {
  const std::string root = ::twinserve::testing::NewTempDir("store");
  auto store = *ModelStore::Open(root);
  ModelRegistry registry(store.get(), RunnerOptions{});
  auto up = *store->BeginUpload();
  ASSERT_TRUE(up->Append(::twinserve::testing::ReadFileOrDie(
                             ::twinserve::testing::FixturePath("add_sub.pt")))
                  .ok());
  RegisterArgs args;
  args.name = "m";
  args.signature = TwoInputs();
  args.signature.outputs.push_back({"diff", DataType::kFp32, {-1, 4}});
  ASSERT_TRUE(registry.Register(args, *up->Finish()).ok());
  InferenceEngine engine(&registry, EngineOptions{2});

  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        InferRequest req;
        req.model = "m";
        req.inputs = {Floats("a", {2, 4}, t), Floats("b", {2, 4}, i)};
        req.requested_outputs = {"diff"};
        auto r = engine.InferSync(std::move(req));
        if (!r.ok() || r->outputs.size() != 1 ||
            reinterpret_cast<const float*>(r->outputs[0].data)[7] != t - i) {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  auto stats = registry.Stats("m", "");
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].stats.execution_count, 200u);
  EXPECT_EQ(stats[0].stats.inference_count, 400u);

  InferRequest bad;
  bad.model = "m";
  bad.inputs = {Floats("a", {2, 4}, 0)};
  EXPECT_EQ(engine.InferSync(std::move(bad)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry.Stats("m", "fp32")[0].stats.fail.count, 1u);
}

}  // namespace
}  // namespace twinserve
