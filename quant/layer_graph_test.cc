#include "quant/layer_graph.h"

#include <torch/csrc/jit/passes/fold_conv_bn.h>
#include <torch/script.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;

std::vector<std::string> Pairs(const LayerGraph& g) {
  std::vector<std::string> out;
  for (const LayerPair& p : g.pairs) {
    out.push_back(p.first + " -> " + p.second + " " + p.activation);
  }
  return out;
}

TEST(LayerGraphTest, FindsLayersAndThePairsTheirChannelsCanMoveBetween) {
  torch::jit::Module m = torch::jit::load(FixturePath("pairs.pt"));
  auto g = AnalyzeLayers(m);
  ASSERT_TRUE(g.ok()) << g.status();
  ASSERT_EQ(g->layers.size(), 8u);
  EXPECT_EQ(g->layers[0].path, "c1");
  EXPECT_FALSE(g->layers[0].linear);
  const Layer* dw = g->Find("dw");
  ASSERT_NE(dw, nullptr);
  EXPECT_EQ(dw->groups, 8);
  EXPECT_TRUE(LayerGraph::Rescalable(*dw));
  EXPECT_TRUE(g->Find("fc1")->linear);
  EXPECT_THAT(Pairs(*g), ElementsAre("c1 -> c2 relu", "c4 -> dw relu6",
                                     "dw -> pw relu", "fc1 -> fc2 relu"));
  // The two adjacent layer pairs it cannot make, each with its reason.
  ASSERT_EQ(g->unpaired.size(), 2u);
  EXPECT_THAT(g->unpaired[0], HasSubstr("c2 -> c3: sigmoid"));
  EXPECT_THAT(g->unpaired[1], HasSubstr("c3 -> c4: the activation feeds"));
}

TEST(LayerGraphTest, ResidualBlocksPairInsideButNotAcrossTheSkip) {
  torch::jit::Module m = torch::jit::load(FixturePath("fashion_cnn.pt"));
  m.eval();
  // As the quantizer sees it: batch norms folded into the convolutions.
  auto g = AnalyzeLayers(torch::jit::FoldConvBatchNorm(m));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->layers.size(), 10u);  // stem, 3 x 2 block convs, 2 downs, fc
  EXPECT_THAT(Pairs(*g), ElementsAre("block1.conv1 -> block1.conv2 relu",
                                     "block2.conv1 -> block2.conv2 relu",
                                     "block3.conv1 -> block3.conv2 relu"));
  // The block inputs also feed the skip connection.
  EXPECT_THAT(g->unpaired, ::testing::Contains(HasSubstr(
                               "down1.conv -> block2.conv1: the activation")));
}

}  // namespace
}  // namespace twinserve
