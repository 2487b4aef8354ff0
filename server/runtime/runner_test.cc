#include "server/runtime/runner.h"

#include <cstring>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::AddSubSignature;

using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;

HostTensor Floats(const std::string& name, Shape shape, std::vector<float> v) {
  std::string bytes(v.size() * 4, '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return HostTensor::Owned(name, DataType::kFp32, shape, bytes);
}

// --intra_op_threads must bound FP32 GEMMs too: OpenBLAS would otherwise
// run them on every core.
TEST(RunnerTest, ThreadSettingReachesOpenBlas) {
  if (BlasThreads() < 0) {
    GTEST_SKIP() << "libblas.so.3 is not OpenBLAS here";
  }
  ConfigureTorchThreads(1, 1);
  EXPECT_EQ(BlasThreads(), 1);
}

TEST(RunnerTest, RunsTupleOutputsInDeclaredOrder) {
  auto runner = Runner::Load(FixturePath("add_sub.pt"), AddSubSignature(), {});
  ASSERT_TRUE(runner.ok()) << runner.status();
  EXPECT_EQ((*runner)->execution_path(), "frozen+optimized");
  RunTimings timings;
  auto out = (*runner)->Run(
      {Floats("a", {1, 4}, {1, 2, 3, 4}), Floats("b", {1, 4}, {1, 1, 1, 1})},
      &timings);
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ((*out)[1].name, "diff");
  const float* diff = reinterpret_cast<const float*>((*out)[1].data);
  EXPECT_EQ(diff[3], 3.0f);
  EXPECT_GT(timings.infer_ns, 0u);
}

TEST(RunnerTest, OptimizedFp32MatchesThePlainModule) {
  Signature s;
  s.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}};
  s.outputs = {{"logits", DataType::kFp32, {-1, 10}}};
  auto fast = Runner::Load(FixturePath("fashion_cnn.pt"), s, {});
  RunnerOptions plain_opts;
  plain_opts.optimize = false;
  auto plain = Runner::Load(FixturePath("fashion_cnn.pt"), s, plain_opts);
  ASSERT_TRUE(fast.ok() && plain.ok());
  EXPECT_EQ((*fast)->execution_path(), "frozen+optimized");
  EXPECT_EQ((*plain)->execution_path(), "scripted");
  EXPECT_GT((*plain)->parameter_bytes(), 100000u);
  std::vector<float> px(2 * 28 * 28);
  for (size_t i = 0; i < px.size(); ++i) px[i] = (i % 13) / 13.0f;
  auto a = (*fast)->Run({Floats("image", {2, 1, 28, 28}, px)}, nullptr);
  auto b = (*plain)->Run({Floats("image", {2, 1, 28, 28}, px)}, nullptr);
  ASSERT_TRUE(a.ok() && b.ok());
  const float* x = reinterpret_cast<const float*>((*a)[0].data);
  const float* y = reinterpret_cast<const float*>((*b)[0].data);
  for (int i = 0; i < 20; ++i) EXPECT_NEAR(x[i], y[i], 1e-3);
}

TEST(RunnerTest, RefusesWhatIsNotTorchScript) {
  auto r = Runner::Load(FixturePath("not_a_model.pt"), AddSubSignature(), {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("not a loadable TorchScript"));
}

TEST(RunnerTest, RefusesOutputsThatDifferFromTheDeclaration) {
  Signature s = AddSubSignature();
  s.outputs[1].dtype = DataType::kInt64;
  auto r = Runner::Load(FixturePath("add_sub.pt"), s, {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("output 'diff' (position 1) is declared INT64"));
}

TEST(RunnerTest, ForwardThatThrowsIsInternalWithTheModelsMessage) {
  Signature s;
  s.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  s.outputs = {{"y", DataType::kFp32, {-1, 4}}};
  auto r = Runner::Load(FixturePath("throws.pt"), s, {});
  ASSERT_TRUE(r.ok()) << r.status();
  auto out = (*r)->Run({Floats("x", {1, 4}, {0, 0, 0, 500})}, nullptr);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(out.status().message(),
              HasSubstr("value too large for this model"));
}

}  // namespace
}  // namespace twinserve
