#include "quant/equalization.h"

#include <torch/torch.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace twinserve {
namespace {

using torch::jit::Module;

// [C] -> shape broadcastable along `dim` of a tensor with `ndim` dims.
at::Tensor Along(const at::Tensor& s, int64_t dim, int64_t ndim) {
  std::vector<int64_t> shape(ndim, 1);
  shape[dim] = s.numel();
  return s.reshape(shape);
}

at::Tensor Weight(const Module& m) { return m.attr("weight").toTensor(); }

// Per-channel |max| of the first layer's outputs (dim 0 of its weight).
at::Tensor OutputRanges(const Module& first) {
  return Weight(first).abs().flatten(1).amax(1);
}

// Per-channel |max| of the second layer's inputs: dim 1 of a dense weight,
// dim 0 of a depthwise one.
at::Tensor InputRanges(const Module& second, bool depthwise) {
  const at::Tensor w = Weight(second).abs();
  return depthwise ? w.flatten(1).amax(1)
                   : w.transpose(0, 1).flatten(1).amax(1);
}

bool Depthwise(const Module& m) {
  const at::Tensor w = Weight(m);
  return w.dim() > 2 && w.size(1) == 1 && w.size(0) > 1;
}

// Divides the first layer's output channels by `s` and multiplies the
// second layer's input channels by it: the same function.
void ScalePair(Module& first, Module& second, const at::Tensor& s) {
  torch::NoGradGuard no_grad;
  at::Tensor w1 = Weight(first);
  w1.div_(Along(s, 0, w1.dim()));
  if (first.hasattr("bias") && first.attr("bias").isTensor()) {
    first.attr("bias").toTensor().div_(s);
  }
  at::Tensor w2 = Weight(second);
  w2.mul_(Along(s, Depthwise(second) ? 0 : 1, w2.dim()));
}

double Spread(const at::Tensor& ranges) {
  at::Tensor sorted = std::get<0>(ranges.sort());
  const double median = sorted[sorted.numel() / 2].item<double>();
  const double top = sorted[sorted.numel() - 1].item<double>();
  return median > 0 ? top / median : 0;
}

// s = a / b where both are positive, else 1 (a dead channel stays put).
at::Tensor SafeRatio(const at::Tensor& a, const at::Tensor& b) {
  at::Tensor ok = (a > 0) & (b > 0);
  at::Tensor r = at::where(ok, a / b.clamp_min(1e-30), at::ones_like(a));
  return r.clamp(1e-6, 1e6);
}

}  // namespace

RescaleResult CrossLayerEqualize(torch::jit::Module* module,
                                 const std::vector<LayerPair>& pairs,
                                 int sweeps) {
  RescaleResult out;
  std::vector<double> before(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    before[i] = Spread(OutputRanges(SubmoduleAt(*module, pairs[i].first)));
  }
  for (int sweep = 0; sweep < sweeps; ++sweep) {
    for (const LayerPair& p : pairs) {
      Module first = SubmoduleAt(*module, p.first);
      Module second = SubmoduleAt(*module, p.second);
      const at::Tensor r1 = OutputRanges(first);
      const at::Tensor r2 = InputRanges(second, Depthwise(second));
      ScalePair(first, second, SafeRatio(r1, r2).sqrt());
    }
  }
  for (size_t i = 0; i < pairs.size(); ++i) {
    const double after =
        Spread(OutputRanges(SubmoduleAt(*module, pairs[i].first)));
    out.rescaled.push_back(absl::StrFormat(
        "%s -> %s (%s): output channel range spread %.1fx -> %.1fx",
        pairs[i].first, pairs[i].second, pairs[i].activation, before[i],
        after));
  }
  return out;
}

RescaleResult SmoothLinear(torch::jit::Module* module, const LayerGraph& graph,
                           const std::map<std::string, ChannelStats>& inputs,
                           double alpha) {
  RescaleResult out;
  for (const LayerPair& p : graph.pairs) {
    const Layer* second = graph.Find(p.second);
    if (second == nullptr || !second->linear) continue;
    auto it = inputs.find(p.second);
    if (it == inputs.end() || !it->second.absmax.defined()) {
      out.skipped.push_back(absl::StrCat(p.first, " -> ", p.second,
                                         ": no activation statistics"));
      continue;
    }
    Module first = SubmoduleAt(*module, p.first);
    Module lin = SubmoduleAt(*module, p.second);
    const at::Tensor x = it->second.absmax;
    const at::Tensor w = InputRanges(lin, /*depthwise=*/false);
    const double spread_before = it->second.Spread();
    // s = x^alpha / w^(1 - alpha); channels with no data stay put.
    at::Tensor s = SafeRatio(x.pow(alpha), w.pow(1 - alpha));
    ScalePair(first, lin, s);
    out.rescaled.push_back(absl::StrFormat(
        "%s -> %s (%s): smoothed with alpha %.2f; activation channel spread "
        "%.1fx -> %.1fx",
        p.first, p.second, p.activation, alpha, spread_before, Spread(x / s)));
  }
  return out;
}

absl::StatusOr<double> RelativeOutputDifference(
    const torch::jit::Module& a, const torch::jit::Module& b,
    const std::vector<c10::IValue>& inputs) {
  try {
    torch::NoGradGuard no_grad;
    auto first = [](c10::IValue v) {
      while (v.isTuple()) v = v.toTupleRef().elements()[0];
      if (v.isList()) v = v.toListRef()[0];
      return v.toTensor();
    };
    Module ma = a, mb = b;
    const at::Tensor ya = first(ma.forward(inputs));
    const at::Tensor yb = first(mb.forward(inputs));
    const double scale = ya.abs().max().item<double>();
    const double diff = (ya - yb).abs().max().item<double>();
    return scale > 0 ? diff / scale : diff;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("comparing outputs failed: ", e.what()));
  }
}

absl::StatusOr<RescaleResult> EqualizeChecked(
    torch::jit::Module* module, const std::vector<c10::IValue>& check_inputs,
    double tolerance) {
  auto graph = AnalyzeLayers(*module);
  if (!graph.ok()) return graph.status();
  const Module original = module->clone();
  RescaleResult out = CrossLayerEqualize(module, graph->pairs);
  auto diff = RelativeOutputDifference(original, *module, check_inputs);
  if (!diff.ok()) return diff.status();
  if (*diff > tolerance) {
    // Undo, and redo without the pairs whose activation clips.
    std::vector<LayerPair> exact;
    for (const LayerPair& p : graph->pairs) {
      if (!p.clipped()) {
        exact.push_back(p);
      } else {
        out.skipped.push_back(absl::StrCat(
            p.first, " -> ", p.second, ": ", p.activation,
            " clips activations the rescaling would move; not equalized"));
      }
    }
    for (const auto& p : original.named_parameters(/*recurse=*/true)) {
      torch::NoGradGuard no_grad;
      for (const auto& q : module->named_parameters(/*recurse=*/true)) {
        if (q.name == p.name) q.value.copy_(p.value);
      }
    }
    std::vector<std::string> skipped = std::move(out.skipped);
    out = CrossLayerEqualize(module, exact);
    out.skipped = std::move(skipped);
    diff = RelativeOutputDifference(original, *module, check_inputs);
    if (!diff.ok()) return diff.status();
    if (*diff > tolerance) {
      return absl::InternalError(absl::StrFormat(
          "cross-layer equalization changed the FP32 outputs by %.2e "
          "(relative); this is a bug",
          *diff));
    }
  }
  for (const std::string& u : graph->unpaired) out.skipped.push_back(u);
  return out;
}

}  // namespace twinserve
