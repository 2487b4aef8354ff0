// LayerStats: per-channel statistics of what each convolution and linear
// layer of a module receives, measured by running the module's inlined
// forward with every layer input as an extra output (no hooks in
// TorchScript). Bias correction uses the means; smoothing and the report's
// channel spread use the absolute maxima.
//
// Includes LibTorch: for quant/*.cc only.
#ifndef TWINSERVE_QUANT_LAYER_STATS_H_
#define TWINSERVE_QUANT_LAYER_STATS_H_

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace twinserve {

struct ChannelStats {
  at::Tensor mean;      // [C] float, over samples and positions
  at::Tensor absmax;    // [C] float
  at::Tensor mean_abs;  // [C] float: mean |x|
  at::Tensor mean_sq;   // [C] float: mean x^2
  int64_t count = 0;    // values per channel seen

  // Largest channel range over the median one: how far a few channels
  // outrun the rest (1 for even channels; 0 if nothing was seen).
  double Spread() const;
};

// One batch of forward arguments (without self), or an error.
using BatchFn = std::function<absl::StatusOr<std::vector<c10::IValue>>(
    int64_t begin, int64_t end)>;

// Runs `module` (eval mode, no observers) over samples [0, n) in batches of
// `batch` and returns the input statistics of every layer AnalyzeLayers
// finds, by module path. Channels are dim 1 for convolutions and the last
// dim for linear layers. INVALID_ARGUMENT naming what failed.
absl::StatusOr<std::map<std::string, ChannelStats>> MeasureLayerInputs(
    const torch::jit::Module& module, const BatchFn& batches, int64_t n,
    int64_t batch);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_LAYER_STATS_H_
