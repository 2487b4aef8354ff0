// Putting Linear layers on twinserve's ops (server/runtime/linear_ops.h) in a
// frozen TorchScript module: find each aten::linear with constant FP32
// weights, name it by module path, let the caller pack it, and replace the
// call; plus the timings the conversions decide by.
//
// Includes LibTorch: for quant/*.cc only.
#ifndef TWINSERVE_QUANT_LINEAR_REWRITE_H_
#define TWINSERVE_QUANT_LINEAR_REWRITE_H_

#include <ATen/ATen.h>
#include <torch/csrc/jit/api/module.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "quant/report.h"
#include "server/runtime/linear_ops.h"

namespace twinserve {

// A Linear layer of an FP32 model: its module path and weights.
struct LinearLayer {
  std::string path;
  at::Tensor weight;
};

// The Linear layers of a scripted module (quant/layer_graph.h finds them);
// empty if it has none or cannot be analysed.
std::vector<LinearLayer> FindLinearLayers(const torch::jit::Module& fp32);

// How one layer is packed; nullopt leaves it as it is. It names its kernel
// in report->kernel and may set report->gemm_from_rows (>= 0) when it knows
// the crossover; otherwise it is measured.
using PackFn = std::function<c10::optional<PackedLinear>(
    const std::string& layer, const at::Tensor& weight,
    LinearKernelReport* report)>;

// Replaces every aten::linear of `frozen` whose weights are a constant FP32
// matrix by the twinserve op that `pack` packs it for (layers named by
// matching `layers`' weights, "linear #i" otherwise), removes what became
// dead, and sets *parameter_bytes to the tensor constants left. One report
// row per such layer, packed or not. Throws what LibTorch throws.
std::vector<LinearKernelReport> RewriteLinears(
    torch::jit::Module& frozen, const std::vector<LinearLayer>& layers,
    const PackFn& pack, uint64_t* parameter_bytes);

// Whether any report row runs on a twinserve kernel.
bool AnyPacked(const std::vector<LinearKernelReport>& reports);

// The fewest rows (1, 2, 4, ..., 64) from which the dequantized GEMM beats
// the GEMV kernel for `t` here; 0 if it never does.
int64_t MeasureGemmCrossover(const PackedLinear& t, int64_t k);

// Median wall time of `runs` calls of `fn` after one warm-up, milliseconds.
double MedianMs(const std::function<void()>& fn, int runs);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_LINEAR_REWRITE_H_
