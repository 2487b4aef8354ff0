#include "quant/equalization.h"

#include <torch/csrc/jit/passes/fold_conv_bn.h>
#include <torch/script.h>
#include <torch/torch.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "quant/bias_correction.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;

// As the quantizer sees it: batch norms folded into the convolutions.
torch::jit::Module Load(const std::string& fixture) {
  torch::jit::Module m = torch::jit::load(FixturePath(fixture));
  m.eval();
  return torch::jit::FoldConvBatchNorm(m);
}

std::vector<c10::IValue> Images(int64_t n, int64_t c = 1, int64_t hw = 28) {
  torch::manual_seed(1);
  return {torch::rand({n, c, hw, hw})};
}

double MaxSpread(const torch::jit::Module& m, const std::string& layer) {
  at::Tensor w = SubmoduleAt(m, layer).attr("weight").toTensor();
  at::Tensor r = w.abs().flatten(1).amax(1);
  return (r.max() / r.median()).item<double>();
}

TEST(EqualizationTest, OutlierChannelsComeBackInLineWithTheSameFunction) {
  // Channels 0 and 5 of each block's first convolution run 200x wider.
  torch::jit::Module m = Load("fashion_cnn_outlier.pt");
  EXPECT_GT(MaxSpread(m, "block1.conv1"), 100);
  torch::jit::Module original = m.clone();
  auto result = EqualizeChecked(&m, Images(16));
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->rescaled.size(), 3u);
  EXPECT_THAT(result->rescaled[0],
              HasSubstr("block1.conv1 -> block1.conv2 (relu)"));
  auto diff = RelativeOutputDifference(original, m, Images(64));
  ASSERT_TRUE(diff.ok());
  EXPECT_LT(*diff, 1e-4) << "FP32-equivalent by construction";
  EXPECT_LT(MaxSpread(m, "block1.conv1"), 10);
  EXPECT_THAT(result->skipped,
              Contains(HasSubstr("down1.conv -> block2.conv1")));
}

TEST(EqualizationTest, ClippedAndUnpairableLayersAreReported) {
  torch::jit::Module m = Load("pairs.pt");
  torch::jit::Module original = m.clone();
  auto result = EqualizeChecked(&m, Images(8, 3, 16));
  ASSERT_TRUE(result.ok()) << result.status();
  auto diff = RelativeOutputDifference(original, m, Images(32, 3, 16));
  ASSERT_TRUE(diff.ok());
  EXPECT_LT(*diff, 1e-4);
  EXPECT_THAT(result->skipped, Contains(HasSubstr("c2 -> c3: sigmoid")));
  EXPECT_THAT(result->skipped,
              Contains(HasSubstr("c3 -> c4: the activation feeds")));
  // c4 -> dw goes through ReLU6: rescaled only if that left the outputs
  // alone, reported as skipped otherwise.
  int mentions = 0;
  for (const auto& l : result->rescaled) mentions += l.find("c4 -> dw") == 0;
  for (const auto& l : result->skipped) mentions += l.find("c4 -> dw") == 0;
  EXPECT_EQ(mentions, 1);
}

TEST(EqualizationTest, SmoothingMovesActivationRangeIntoLinearWeights) {
  torch::jit::Module m = Load("pairs.pt");
  torch::jit::Module original = m.clone();
  auto g = AnalyzeLayers(m);
  ASSERT_TRUE(g.ok());
  const auto images = Images(16, 3, 16);
  auto stats = MeasureLayerInputs(
      m,
      [&](int64_t, int64_t) -> absl::StatusOr<std::vector<c10::IValue>> {
        return images;
      },
      1, 16);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_TRUE(stats->count("fc2"));
  EXPECT_EQ(stats->at("fc2").absmax.numel(), 32);
  EXPECT_EQ(stats->at("c2").mean.numel(), 8);
  RescaleResult r = SmoothLinear(&m, *g, *stats, 0.5);
  ASSERT_EQ(r.rescaled.size(), 1u);
  EXPECT_THAT(r.rescaled[0], HasSubstr("fc1 -> fc2 (relu): smoothed"));
  auto diff = RelativeOutputDifference(original, m, images);
  ASSERT_TRUE(diff.ok());
  EXPECT_LT(*diff, 1e-4);
}

TEST(BiasCorrectionTest, RemovesTheMeanShiftOfQuantizedWeights) {
  torch::jit::Module m = Load("pairs.pt");
  auto g = AnalyzeLayers(m);
  ASSERT_TRUE(g.ok());
  const auto images = Images(32, 3, 16);
  auto stats = MeasureLayerInputs(
      m,
      [&](int64_t, int64_t) -> absl::StatusOr<std::vector<c10::IValue>> {
        return images;
      },
      1, 32);
  ASSERT_TRUE(stats.ok());
  // fc2 alone: its output mean with quantized weights, before and after.
  torch::jit::Module fc2 = SubmoduleAt(m, "fc2");
  const at::Tensor w = fc2.attr("weight").toTensor().clone();
  const at::Tensor mean_in = stats->at("fc2").mean;
  const at::Tensor wq = FakeQuantizeWeight(w, /*per_channel=*/true);
  const at::Tensor shift_before = (wq - w).matmul(mean_in);
  BiasCorrectionResult r =
      CorrectBiases(&m, *g, *stats, {"fc2", "c1"}, /*per_channel=*/true);
  EXPECT_EQ(r.corrected, 2);
  const at::Tensor b_after = fc2.attr("bias").toTensor();
  // y_q = Wq x + b' must have the mean of y = W x + b.
  const at::Tensor b =
      Load("pairs.pt").attr("fc2").toModule().attr("bias").toTensor();
  EXPECT_TRUE(torch::allclose(b_after, b - shift_before, 1e-5, 1e-6));
}

}  // namespace
}  // namespace twinserve
