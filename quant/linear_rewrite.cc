#include "quant/linear_rewrite.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/runtime/graph_iterator.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "quant/layer_graph.h"

namespace twinserve {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// Every aten::linear of `graph`, nested blocks included, in order.
std::vector<Node*> LinearNodes(std::shared_ptr<torch::jit::Graph> g) {
  std::vector<Node*> out;
  torch::jit::DepthFirstGraphNodeIterator it(g);
  for (Node* n = it.next(); n != nullptr; n = it.next()) {
    if (n->kind() == c10::Symbol::fromQualString("aten::linear")) {
      out.push_back(n);
    }
  }
  return out;
}

c10::optional<at::Tensor> ConstantTensor(Value* v) {
  auto iv = torch::jit::toIValue(v);
  if (!iv.has_value() || !iv->isTensor()) return c10::nullopt;
  return iv->toTensor();
}

// The layer whose weights `w` are: the same storage, or (in a model saved
// and loaded again) the same values.
const LinearLayer* Match(const std::vector<LinearLayer>& layers,
                         const at::Tensor& w) {
  for (const LinearLayer& l : layers) {
    if (l.weight.data_ptr() == w.data_ptr()) return &l;
  }
  for (const LinearLayer& l : layers) {
    if (l.weight.sizes() == w.sizes() && at::equal(l.weight, w)) return &l;
  }
  return nullptr;
}

}  // namespace

double MedianMs(const std::function<void()>& fn, int runs) {
  fn();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    t.push_back(std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - t0)
                    .count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int64_t MeasureGemmCrossover(const PackedLinear& t, int64_t k) {
  for (int64_t m = 1; m <= 64; m *= 2) {
    const at::Tensor x = at::randn({m, k});
    const double gemv = MedianMs([&] { RunPacked(t, x, k, 0); }, 5);
    const double gemm = MedianMs([&] { RunPacked(t, x, k, 1); }, 5);
    if (gemm < gemv) return m;
  }
  return 0;
}

std::vector<LinearLayer> FindLinearLayers(const torch::jit::Module& fp32) {
  std::vector<LinearLayer> out;
  auto layers = AnalyzeLayers(fp32);
  if (!layers.ok()) return out;
  for (const Layer& l : layers->layers) {
    if (!l.linear) continue;
    out.push_back(
        {l.path, SubmoduleAt(fp32, l.path).attr("weight").toTensor()});
  }
  return out;
}

std::vector<LinearKernelReport> RewriteLinears(
    torch::jit::Module& frozen, const std::vector<LinearLayer>& layers,
    const PackFn& pack, uint64_t* parameter_bytes) {
  auto graph = frozen.get_method("forward").graph();
  std::vector<LinearKernelReport> reports;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool>, int64_t> crossovers;
  int index = 0;
  for (Node* node : LinearNodes(graph)) {
    const int this_index = index++;
    auto weight = ConstantTensor(node->input(1));
    if (!weight.has_value() || weight->dim() != 2 ||
        weight->scalar_type() != at::kFloat) {
      continue;  // weights computed at run time: nothing to pack
    }
    const LinearLayer* layer = Match(layers, *weight);
    LinearKernelReport report;
    report.layer =
        layer != nullptr ? layer->path : absl::StrCat("linear #", this_index);
    report.out_features = weight->size(0);
    report.in_features = weight->size(1);
    // -1: measure the crossover below unless `pack` knows it.
    report.gemm_from_rows = -1;
    c10::optional<PackedLinear> t = pack(report.layer, *weight, &report);
    if (!t.has_value()) {
      report.gemm_from_rows = 0;
      reports.push_back(report);
      continue;
    }
    if (report.gemm_from_rows < 0) {
      // Layers of one shape and kind share a measurement.
      const auto key = std::make_tuple(report.out_features, report.in_features,
                                       t->group, t->dynamic);
      auto known = crossovers.find(key);
      if (known == crossovers.end()) {
        known = crossovers
                    .emplace(key, MeasureGemmCrossover(*t, report.in_features))
                    .first;
      }
      report.gemm_from_rows = known->second;
    }
    c10::optional<at::Tensor> bias = ConstantTensor(node->input(2));
    torch::jit::WithInsertPoint guard(node);
    std::vector<torch::jit::NamedValue> args = {
        node->input(0), c10::IValue(t->q), c10::IValue(t->scale)};
    const char* op = "twinserve::linear_int8_weight";
    if (t->group > 0) {
      op = "twinserve::linear_int4_weight";
      args.emplace_back(c10::IValue(t->zero));
      args.emplace_back(t->input_scale.defined() ? c10::IValue(t->input_scale)
                                                 : c10::IValue());
    } else if (t->dynamic) {
      op = "twinserve::linear_int8_dynamic";
      args.emplace_back(c10::IValue(t->row_sum));
    }
    args.emplace_back(bias.has_value() ? c10::IValue(bias->contiguous())
                                       : c10::IValue());
    args.emplace_back(c10::IValue(report.in_features));
    if (t->group > 0) args.emplace_back(c10::IValue(t->group));
    args.emplace_back(c10::IValue(report.gemm_from_rows));
    Value* call = graph->insert(c10::Symbol::fromQualString(op), args);
    node->output()->replaceAllUsesWith(call);
    node->destroy();
    reports.push_back(report);
  }
  torch::jit::EliminateDeadCode(graph);
  *parameter_bytes = 0;
  for (Node* n : graph->nodes()) {
    if (n->kind() != c10::prim::Constant) continue;
    if (auto t = ConstantTensor(n->output()); t.has_value()) {
      *parameter_bytes += t->nbytes();
    }
  }
  return reports;
}

bool AnyPacked(const std::vector<LinearKernelReport>& reports) {
  for (const auto& r : reports) {
    if (r.kernel.rfind("twinserve", 0) == 0) return true;
  }
  return false;
}

}  // namespace twinserve
