#include "quant/layer_stats.h"

#include <torch/csrc/jit/api/function_impl.h>
#include <torch/torch.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "quant/layer_graph.h"

namespace twinserve {

double ChannelStats::Spread() const {
  if (!absmax.defined() || absmax.numel() == 0) return 0;
  at::Tensor sorted = std::get<0>(absmax.sort());
  const double median = sorted[sorted.numel() / 2].item<double>();
  const double top = sorted[sorted.numel() - 1].item<double>();
  if (median <= 0) return top > 0 ? 1e9 : 1;
  return top / median;
}

absl::StatusOr<std::map<std::string, ChannelStats>> MeasureLayerInputs(
    const torch::jit::Module& module, const BatchFn& batches, int64_t n,
    int64_t batch) {
  auto analysis = AnalyzeLayers(module);
  if (!analysis.ok()) return analysis.status();
  LayerGraph& g = *analysis;
  // One tuple output (a function has exactly one): what forward returned,
  // then every layer's input.
  std::vector<torch::jit::Value*> values(g.graph->outputs().begin(),
                                         g.graph->outputs().end());
  const size_t first_tap = values.size();
  for (const Layer& l : g.layers) values.push_back(l.input);
  torch::jit::Node* tuple = g.graph->appendNode(g.graph->createTuple(values));
  while (!g.graph->outputs().empty()) g.graph->eraseOutput(0);
  g.graph->registerOutput(tuple->output());
  std::map<std::string, ChannelStats> out;
  try {
    torch::jit::GraphFunction fn("twinserve_layer_taps", g.graph, nullptr);
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> sum(g.layers.size()), amax(g.layers.size()),
        abs_sum(g.layers.size()), sq_sum(g.layers.size());
    std::vector<int64_t> count(g.layers.size(), 0);
    for (int64_t b = 0; b < n; b += batch) {
      auto args = batches(b, std::min(n, b + batch));
      if (!args.ok()) return args.status();
      torch::jit::Stack stack;
      stack.push_back(module._ivalue());
      for (c10::IValue& a : *args) stack.push_back(std::move(a));
      fn.run(stack);
      const auto& outputs = stack.back().toTupleRef().elements();
      for (size_t i = 0; i < g.layers.size(); ++i) {
        const c10::IValue& v = outputs.at(first_tap + i);
        if (!v.isTensor()) continue;
        at::Tensor x = v.toTensor().detach().to(at::kFloat);
        // Channels first, everything else flattened behind them.
        x = g.layers[i].linear ? x.reshape({-1, x.size(-1)}).t()
                               : x.transpose(0, 1).reshape({x.size(1), -1});
        at::Tensor s = x.sum(1);
        at::Tensor a = x.abs();
        at::Tensor m = a.amax(1);
        at::Tensor as = a.sum(1);
        at::Tensor sq = (x * x).sum(1);
        sum[i] = sum[i].defined() ? sum[i] + s : s;
        abs_sum[i] = abs_sum[i].defined() ? abs_sum[i] + as : as;
        sq_sum[i] = sq_sum[i].defined() ? sq_sum[i] + sq : sq;
        amax[i] = amax[i].defined() ? at::maximum(amax[i], m) : m;
        count[i] += x.size(1);
      }
    }
    for (size_t i = 0; i < g.layers.size(); ++i) {
      if (!sum[i].defined() || count[i] == 0) continue;
      ChannelStats& s = out[g.layers[i].path];
      s.mean = sum[i] / static_cast<double>(count[i]);
      s.absmax = amax[i];
      s.mean_abs = abs_sum[i] / static_cast<double>(count[i]);
      s.mean_sq = sq_sum[i] / static_cast<double>(count[i]);
      s.count = count[i];
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("measuring the layers' inputs failed: ", e.what()));
  }
  return out;
}

}  // namespace twinserve
