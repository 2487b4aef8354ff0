// LayerGraph: the convolution and linear layers of a scripted module's
// forward, found in an inlined copy of its graph, by module path
// ("block1.conv1"), and the pairs of them joined by nothing but a
// positively homogeneous activation (ReLU; ReLU6 and hardtanh(x, 0, c) up
// to their clip) or no activation at all, with no other consumer in between:
// the pairs whose channels can be rescaled against each other without changing
// the FP32 function (cross-layer equalization, smoothing). Adjacent layers that
// cannot be paired are listed with the reason.
//
// Includes LibTorch: for quant/*.cc only.
#ifndef TWINSERVE_QUANT_LAYER_GRAPH_H_
#define TWINSERVE_QUANT_LAYER_GRAPH_H_

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace twinserve {

struct Layer {
  std::string path;     // module path of the layer, "" for the root
  bool linear = false;  // aten::linear; else a convolution
  int64_t groups = 1;
  int64_t in_channels = 0;  // of the weight (per group for conv)
  int64_t out_channels = 0;
  bool has_bias = false;
  // The layer's input in the inlined graph (for taps).
  torch::jit::Value* input = nullptr;
};

struct LayerPair {
  std::string first, second;  // module paths: first's output feeds second
  std::string activation;     // "relu", "relu6", "hardtanh", "identity"
  // ReLU6 and hardtanh clip: rescaling is exact only where activations stay
  // below the clip (equalization checks the outputs and drops these pairs
  // if they changed).
  bool clipped() const {
    return activation == "relu6" || activation == "hardtanh";
  }
};

struct LayerGraph {
  // The inlined copy the values below point into.
  std::shared_ptr<torch::jit::Graph> graph;
  std::vector<Layer> layers;  // graph order; each module called once
  std::vector<LayerPair> pairs;
  std::vector<std::string> unpaired;  // "a -> b: why"

  const Layer* Find(const std::string& path) const;
  // Whether one input channel of `l` maps to one output channel of the
  // layer before it: dense (groups 1) or depthwise.
  static bool Rescalable(const Layer& l);
};

// INVALID_ARGUMENT when `module` has no forward. Layers whose weight is not
// a plain attribute of a submodule, or whose module runs more than once
// (shared weights), are left out.
absl::StatusOr<LayerGraph> AnalyzeLayers(const torch::jit::Module& module);

// The submodule at `path` ("" = `root`).
torch::jit::Module SubmoduleAt(const torch::jit::Module& root,
                               const std::string& path);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_LAYER_GRAPH_H_
