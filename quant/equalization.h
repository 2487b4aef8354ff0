// Rescaling channel pairs without changing the FP32 function, so that
// per-tensor activation ranges and per-channel weight ranges suit INT8:
//   - cross-layer equalization (Nagel et al., "Data-Free Quantization
//     Through Weight Equalization and Bias Correction", 2019): for each pair
//     of layers joined by a homogeneous activation (quant/layer_graph.h),
//     channel i of the first layer's output is divided by s_i and the second
//     layer's input channel i multiplied by it, with s_i = sqrt(r1_i / r2_i)
//     so both weight ranges become sqrt(r1_i r2_i). A channel that runs 200x
//     wider than its neighbours comes back in line;
//   - smoothing (Xiao et al., "SmoothQuant", 2022) for pairs whose second
//     layer is Linear: s_i = max|x_i|^alpha / max|W[:, i]|^(1 - alpha) from
//     the measured activations, moving activation range into the weights.
// Both edit `module`'s parameters in place (call on a copy: the folded
// module the quantizer owns).
//
// Includes LibTorch: for quant/*.cc only.
#ifndef TWINSERVE_QUANT_EQUALIZATION_H_
#define TWINSERVE_QUANT_EQUALIZATION_H_

#include <torch/csrc/jit/api/module.h>

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "quant/layer_graph.h"
#include "quant/layer_stats.h"

namespace twinserve {

struct RescaleResult {
  // One line per pair rescaled ("block1.conv1 -> block1.conv2 (relu):
  // output channel range spread 212x -> 1.9x") and per pair left alone,
  // with the reason.
  std::vector<std::string> rescaled;
  std::vector<std::string> skipped;
};

// Equalizes every pair `pairs` lists, `sweeps` times over (a layer in two
// pairs moves twice). Pairs through a clipping activation (ReLU6) are
// rescaled too; EqualizeChecked verifies and undoes them if the outputs
// moved.
RescaleResult CrossLayerEqualize(torch::jit::Module* module,
                                 const std::vector<LayerPair>& pairs,
                                 int sweeps = 3);

// Smooths the pairs whose second layer is Linear, with the second layer's
// input statistics `inputs` (measured on `module` as it is now).
RescaleResult SmoothLinear(torch::jit::Module* module, const LayerGraph& graph,
                           const std::map<std::string, ChannelStats>& inputs,
                           double alpha);

// Largest |a - b| over max |a|, element-wise over the first outputs of two
// modules run on the same inputs.
absl::StatusOr<double> RelativeOutputDifference(
    const torch::jit::Module& a, const torch::jit::Module& b,
    const std::vector<c10::IValue>& inputs);

// Cross-layer equalization of `*module` as found by AnalyzeLayers, checked:
// outputs on `check_inputs` must stay within `tolerance` (relative) of the
// original's; if they do not and clipping pairs were rescaled, it is redone
// without those (reported as skipped). Also reports the pairs AnalyzeLayers
// could not make. INVALID_ARGUMENT if even that moves the outputs (a bug).
absl::StatusOr<RescaleResult> EqualizeChecked(
    torch::jit::Module* module, const std::vector<c10::IValue>& check_inputs,
    double tolerance = 1e-4);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_EQUALIZATION_H_
