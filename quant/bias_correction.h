// Bias correction (Nagel et al. 2019, section 4.2): quantizing a layer's
// weights shifts the mean of its outputs by (W_q - W) E[x]; subtracting
// that from its bias removes the shift. E[x] per input channel comes from
// the calibration samples (quant/layer_stats.h); W_q is the weight as the
// weight observers quantize it (symmetric int8, scale max|w| / 127.5, per
// output channel or per tensor).
//
// Includes LibTorch: for quant/*.cc only.
#ifndef TWINSERVE_QUANT_BIAS_CORRECTION_H_
#define TWINSERVE_QUANT_BIAS_CORRECTION_H_

#include <torch/csrc/jit/api/module.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "quant/layer_graph.h"
#include "quant/layer_stats.h"

namespace twinserve {

struct BiasCorrectionResult {
  int corrected = 0;
  // Layers left alone and why ("fc: no bias to correct").
  std::vector<std::string> skipped;
  // Largest |shift| removed over the layer's output range, over layers.
  double largest_relative_shift = 0;
};

// Corrects, in `*module`, the bias of every layer of `graph` in `layers`
// that has one (dense or depthwise convolutions and linear layers).
BiasCorrectionResult CorrectBiases(
    torch::jit::Module* module, const LayerGraph& graph,
    const std::map<std::string, ChannelStats>& inputs,
    const std::set<std::string>& layers, bool per_channel_weights);

// The weight `w` ([out, ...]) after symmetric int8 quantization as the
// weight observers do it.
at::Tensor FakeQuantizeWeight(const at::Tensor& w, bool per_channel);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_BIAS_CORRECTION_H_
