#include "quant/bias_correction.h"

#include <torch/torch.h>

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace twinserve {

at::Tensor FakeQuantizeWeight(const at::Tensor& w, bool per_channel) {
  const at::Tensor x = w.detach().to(at::kFloat);
  if (per_channel) {
    const at::Tensor amax = x.abs().flatten(1).amax(1);
    const at::Tensor scale = (amax / 127.5).clamp_min(1.1920928955078125e-07);
    const at::Tensor zero = at::zeros({x.size(0)}, at::kInt);
    return at::fake_quantize_per_channel_affine(x, scale, zero, 0, -128, 127);
  }
  const double scale =
      std::max(x.abs().max().item<double>() / 127.5, 1.1920928955078125e-07);
  return at::fake_quantize_per_tensor_affine(x, scale, 0, -128, 127);
}

BiasCorrectionResult CorrectBiases(
    torch::jit::Module* module, const LayerGraph& graph,
    const std::map<std::string, ChannelStats>& inputs,
    const std::set<std::string>& layers, bool per_channel_weights) {
  BiasCorrectionResult out;
  torch::NoGradGuard no_grad;
  for (const Layer& l : graph.layers) {
    if (!layers.count(l.path)) continue;
    if (!l.has_bias) {
      out.skipped.push_back(absl::StrCat(l.path, ": no bias to correct"));
      continue;
    }
    auto it = inputs.find(l.path);
    if (it == inputs.end() || !it->second.mean.defined()) {
      out.skipped.push_back(absl::StrCat(l.path, ": no input statistics"));
      continue;
    }
    torch::jit::Module m = SubmoduleAt(*module, l.path);
    const at::Tensor w = m.attr("weight").toTensor();
    const at::Tensor dw =
        FakeQuantizeWeight(w, per_channel_weights) - w.to(at::kFloat);
    const at::Tensor mean = it->second.mean;
    at::Tensor shift;
    if (l.linear || l.groups == 1) {
      // [out, in, k...] summed over the kernel, times E[x] per input.
      const at::Tensor per_input = dw.dim() > 2 ? dw.flatten(2).sum(2) : dw;
      if (per_input.size(1) != mean.numel()) {
        out.skipped.push_back(absl::StrCat(l.path, ": input channels differ"));
        continue;
      }
      shift = per_input.matmul(mean);
    } else if (LayerGraph::Rescalable(l)) {  // depthwise
      if (dw.size(0) != mean.numel()) {
        out.skipped.push_back(absl::StrCat(l.path, ": input channels differ"));
        continue;
      }
      shift = dw.flatten(1).sum(1) * mean;
    } else {
      out.skipped.push_back(
          absl::StrCat(l.path, ": grouped convolution, not corrected"));
      continue;
    }
    at::Tensor bias = m.attr("bias").toTensor();
    const double range =
        std::max(bias.abs().max().item<double>(), w.abs().max().item<double>());
    if (range > 0) {
      out.largest_relative_shift = std::max(
          out.largest_relative_shift, shift.abs().max().item<double>() / range);
    }
    bias.sub_(shift.to(bias.dtype()));
    ++out.corrected;
  }
  return out;
}

}  // namespace twinserve
