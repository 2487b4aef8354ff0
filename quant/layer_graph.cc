#include "quant/layer_graph.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace twinserve {
namespace {

using torch::jit::Node;
using torch::jit::Value;

bool IsConv(const Node* n) {
  const auto k = n->kind();
  return k == c10::aten::conv1d || k == c10::aten::conv2d ||
         k == c10::aten::conv3d;
}

bool IsLayer(const Node* n) {
  return IsConv(n) || n->kind() == c10::aten::linear;
}

// The module path of the attribute chain that produced `v` from the
// graph's first input (self), with the final attribute name in `*attr`;
// false if `v` is not such a chain.
bool AttributePath(Value* v, Value* self, std::string* module_path,
                   std::string* attr) {
  std::vector<std::string> names;
  while (v != self) {
    const Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr) return false;
    names.push_back(n->s(c10::attr::name));
    v = n->input(0);
  }
  if (names.empty()) return false;
  *attr = names.front();
  std::string path;
  for (size_t i = names.size(); i-- > 1;) {
    path = path.empty() ? names[i] : absl::StrCat(path, ".", names[i]);
  }
  *module_path = path;
  return true;
}

// The activation `n` applies, if it is positively homogeneous (f(s x) =
// s f(x) for s > 0), or is so up to a clip (ReLU6, hardtanh(x, 0, c)); ""
// otherwise.
std::string HomogeneousActivation(const Node* n) {
  const auto k = n->kind();
  if (k == c10::aten::relu || k == c10::aten::relu_) return "relu";
  if (k == c10::aten::relu6 || k == c10::aten::relu6_) return "relu6";
  if (k == c10::aten::hardtanh || k == c10::aten::hardtanh_) {
    // A negative lower bound is not homogeneous at all.
    auto lo = torch::jit::toIValue(n->input(1));
    if (lo && lo->isScalar() && lo->toScalar().toDouble() == 0.0) {
      return "hardtanh";
    }
  }
  return "";
}

// Elementwise activations that are not homogeneous: named as the reason a
// pair was not made.
bool OtherActivation(const Node* n) {
  static const std::set<std::string> kinds = {
      "aten::sigmoid",    "aten::tanh",        "aten::gelu",
      "aten::silu",       "aten::hardswish",   "aten::elu",
      "aten::leaky_relu", "aten::hardsigmoid", "aten::mish",
      "aten::softplus",   "aten::hardtanh"};
  return kinds.count(n->kind().toQualString()) > 0;
}

}  // namespace

const Layer* LayerGraph::Find(const std::string& path) const {
  for (const Layer& l : layers) {
    if (l.path == path) return &l;
  }
  return nullptr;
}

bool LayerGraph::Rescalable(const Layer& l) {
  return l.groups == 1 ||
         (l.groups == l.out_channels && l.in_channels == 1);  // depthwise
}

torch::jit::Module SubmoduleAt(const torch::jit::Module& root,
                               const std::string& path) {
  torch::jit::Module m = root;
  if (path.empty()) return m;
  for (absl::string_view part : absl::StrSplit(path, '.')) {
    m = m.attr(std::string(part)).toModule();
  }
  return m;
}

absl::StatusOr<LayerGraph> AnalyzeLayers(const torch::jit::Module& module) {
  auto method = module.find_method("forward");
  if (!method) {
    return absl::InvalidArgumentError("the module has no forward method");
  }
  LayerGraph out;
  out.graph = method->graph()->copy();
  torch::jit::Inline(*out.graph);
  // Functional activations branch on constants (F.relu6's `inplace`).
  torch::jit::ConstantPropagation(out.graph);
  Value* self = out.graph->inputs()[0];

  std::map<std::string, int> calls;
  std::map<const Node*, std::string> path_of;
  std::vector<std::pair<Node*, Layer>> found;
  for (Node* n : out.graph->nodes()) {
    if (!IsLayer(n)) continue;
    std::string path, attr;
    if (!AttributePath(n->input(1), self, &path, &attr) || attr != "weight") {
      continue;
    }
    torch::jit::Module sub = SubmoduleAt(module, path);
    if (!sub.hasattr("weight") || !sub.attr("weight").isTensor()) continue;
    const at::Tensor w = sub.attr("weight").toTensor();
    Layer l;
    l.path = path;
    l.linear = n->kind() == c10::aten::linear;
    l.out_channels = w.size(0);
    l.in_channels = w.dim() > 1 ? w.size(1) : 1;
    l.has_bias = sub.hasattr("bias") && sub.attr("bias").isTensor();
    if (IsConv(n) && n->inputs().size() > 6) {
      auto g = torch::jit::toIValue(n->input(6));
      if (g && g->isInt()) l.groups = g->toInt();
    }
    l.input = n->input(0);
    ++calls[path];
    path_of[n] = path;
    found.push_back({n, l});
  }
  for (auto& [n, l] : found) {
    if (calls[l.path] == 1) out.layers.push_back(l);
  }

  // Pairs: the second layer's input is the first's output, through at most
  // one homogeneous activation, each value used once.
  for (const auto& [n, second] : found) {
    if (calls[second.path] != 1) continue;
    Value* v = n->input(0);
    std::string activation = "identity";
    const Node* producer = v->node();
    std::string why;
    if (!HomogeneousActivation(producer).empty()) {
      activation = HomogeneousActivation(producer);
      if (v->uses().size() != 1) why = "the activation feeds other ops too";
      v = producer->input(0);
      producer = v->node();
    } else if (OtherActivation(producer)) {
      Value* before = producer->input(0);
      if (IsLayer(before->node()) && path_of.count(before->node())) {
        out.unpaired.push_back(
            absl::StrCat(path_of[before->node()], " -> ", second.path, ": ",
                         producer->kind().toUnqualString(),
                         " is not positively homogeneous; not equalized"));
      }
      continue;
    }
    if (!IsLayer(producer) || !path_of.count(producer)) continue;
    const std::string& first_path = path_of[producer];
    if (why.empty() && v->uses().size() != 1) {
      why = "its output branches (used by other ops too)";
    }
    const Layer* first = nullptr;
    for (const auto& [m, l] : found) {
      if (m == producer) first = &l;
    }
    if (why.empty() && calls[first_path] != 1) why = "its module runs twice";
    if (why.empty() &&
        (!LayerGraph::Rescalable(*first) || !LayerGraph::Rescalable(second))) {
      why = "grouped convolution (neither dense nor depthwise)";
    }
    const int64_t second_in = second.groups == 1
                                  ? second.in_channels
                                  : second.out_channels;  // depthwise
    if (why.empty() && first->out_channels != second_in) {
      why = absl::StrCat("channel counts differ (", first->out_channels, " vs ",
                         second_in, ")");
    }
    if (!why.empty()) {
      out.unpaired.push_back(absl::StrCat(first_path, " -> ", second.path, ": ",
                                          why, "; not equalized"));
      continue;
    }
    out.pairs.push_back({first_path, second.path, activation});
  }
  return out;
}

}  // namespace twinserve
