#include "quant/observers.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/frontend/resolver.h>
#include <torch/csrc/jit/frontend/sugared_value.h>
#include <torch/csrc/jit/ir/ir.h>

#include <cmath>
#include <limits>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace twinserve {
namespace {

using torch::jit::Module;

// Resolves `twinserve.<op>` to our registered ops (kernels/torch_ops.cc);
// everything else as the native resolver does.
struct TwinResolver : public torch::jit::NativeResolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(
      const std::string& name, torch::jit::GraphFunction& m,
      const torch::jit::SourceRange& loc) override {
    if (name == "twinserve") {
      return std::make_shared<torch::jit::BuiltinModule>("twinserve");
    }
    return NativeResolver::resolveValue(name, m, loc);
  }
};

constexpr char kActivationSource[] = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    if self.phase == 0:
        mn, mx = torch.aminmax(x.detach())
        if self.seen:
            self.min_val = torch.minimum(self.min_val, mn)
            self.max_val = torch.maximum(self.max_val, mx)
        else:
            self.min_val = mn
            self.max_val = mx
            self.seen = True
    elif self.phase == 1:
        self.histogram = twinserve.histogram_observe(x.detach(), self.histogram, float(self.min_val), float(self.max_val))
    elif self.phase == 2:
        xd = x.detach().float()
        xq = torch.fake_quantize_per_tensor_affine(xd, float(self.qscale), int(self.qzero), 0, 255)
        self.signal += float((xd * xd).sum())
        self.noise += float(((xd - xq) * (xd - xq)).sum())
    return x

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    return twinserve.choose_qparams(self.histogram, float(self.min_val), float(self.max_val), self.method, self.param)
)JIT";

// Symmetric int8 weights: scale = max|w| / 127.5, zero point 0, over each
// output channel (dim 0) or the whole tensor.
constexpr char kWeightSource[] = R"JIT(
def forward(self, x: Tensor) -> Tensor:
    w = x.detach()
    if self.per_channel:
        flat = w.flatten(1)
        self.min_val = torch.amin(flat, 1)
        self.max_val = torch.amax(flat, 1)
    else:
        mn, mx = torch.aminmax(w)
        self.min_val = mn.reshape([1])
        self.max_val = mx.reshape([1])
    if self.phase == 2:
        scale, zp = self.calculate_qparams()
        if self.per_channel:
            wq = torch.fake_quantize_per_channel_affine(w, scale, zp.to(3), 0, -128, 127)
        else:
            wq = torch.fake_quantize_per_tensor_affine(w, float(scale), 0, -128, 127)
        self.signal = float((w * w).sum())
        self.noise = float(((w - wq) * (w - wq)).sum())
    return x

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    amax = torch.maximum(-self.min_val, self.max_val)
    scale = torch.clamp(amax / 127.5, min=1.1920928955078125e-07)
    zero_point = torch.zeros(scale.size(), dtype=4)
    if self.per_channel:
        return scale, zero_point
    return scale.reshape([1]), zero_point.reshape([1])
)JIT";

std::shared_ptr<torch::jit::CompilationUnit> Unit() {
  static auto* cu = new std::shared_ptr<torch::jit::CompilationUnit>(
      std::make_shared<torch::jit::CompilationUnit>());
  return *cu;
}

Module MakeActivationObserver(const ObserverOptions& o) {
  Module m("__torch__.twinserve.ActivationObserver", Unit(),
           /*shouldMangle=*/true);
  m.register_attribute("dtype", c10::IntType::get(),
                       static_cast<int64_t>(c10::ScalarType::QUInt8));
  m.register_attribute("qscheme", c10::IntType::get(),
                       static_cast<int64_t>(at::kPerTensorAffine));
  m.register_attribute("phase", c10::IntType::get(), int64_t{0});
  m.register_attribute("seen", c10::BoolType::get(), false);
  m.register_attribute("method", c10::IntType::get(),
                       static_cast<int64_t>(o.method));
  m.register_attribute("param", c10::FloatType::get(), o.percentile);
  m.register_attribute("signal", c10::FloatType::get(), 0.0);
  m.register_attribute("noise", c10::FloatType::get(), 0.0);
  m.register_buffer("min_val", at::zeros({}));
  m.register_buffer("max_val", at::zeros({}));
  m.register_buffer("histogram", at::zeros({o.histogram_bins}, at::kDouble));
  m.register_buffer("qscale", at::ones({1}));
  m.register_buffer("qzero", at::zeros({1}, at::kLong));
  m.define(kActivationSource, std::make_shared<TwinResolver>());
  return m;
}

Module MakeWeightObserver(const ObserverOptions& o) {
  Module m("__torch__.twinserve.WeightObserver", Unit(), /*shouldMangle=*/true);
  m.register_attribute("dtype", c10::IntType::get(),
                       static_cast<int64_t>(c10::ScalarType::QInt8));
  m.register_attribute(
      "qscheme", c10::IntType::get(),
      static_cast<int64_t>(o.per_channel_weights ? at::kPerChannelSymmetric
                                                 : at::kPerTensorSymmetric));
  m.register_attribute("ch_axis", c10::IntType::get(), int64_t{0});
  m.register_attribute("per_channel", c10::BoolType::get(),
                       o.per_channel_weights);
  m.register_attribute("phase", c10::IntType::get(), int64_t{0});
  m.register_attribute("signal", c10::FloatType::get(), 0.0);
  m.register_attribute("noise", c10::FloatType::get(), 0.0);
  m.register_buffer("min_val", at::zeros({1}));
  m.register_buffer("max_val", at::zeros({1}));
  m.define(kWeightSource, std::make_shared<TwinResolver>());
  return m;
}

// The graph passes recognize a dynamic activation observer by the name
// "PlaceholderObserver" and read its dtype and is_dynamic attributes.
Module MakePlaceholderObserver() {
  Module m("__torch__.twinserve.PlaceholderObserver", Unit(),
           /*shouldMangle=*/true);
  m.register_attribute("dtype", c10::IntType::get(),
                       static_cast<int64_t>(c10::ScalarType::QUInt8));
  m.register_attribute("compute_dtype", c10::IntType::get(),
                       static_cast<int64_t>(c10::ScalarType::QUInt8));
  m.register_attribute("is_dynamic", c10::BoolType::get(), true);
  m.register_attribute("qscheme", c10::IntType::get(),
                       static_cast<int64_t>(at::kPerTensorAffine));
  m.register_attribute("custom_op", c10::StringType::get(), std::string());
  m.define(R"JIT(
def forward(self, x: Tensor) -> Tensor:
    return x

def calculate_qparams(self) -> Tuple[Tensor, Tensor]:
    return torch.ones([1]), torch.zeros([1], dtype=4)
)JIT");
  return m;
}

bool IsObserver(const Module& m, bool* is_weight) {
  const std::string name = m.type()->name()->qualifiedName();
  if (absl::StrContains(name, "WeightObserver")) {
    *is_weight = true;
    return true;
  }
  *is_weight = false;
  return absl::StrContains(name, "ActivationObserver");
}

// What produced `v` in a module's graph, for naming the observed tensor.
std::string Describe(const std::string& prefix, torch::jit::Value* v) {
  torch::jit::Node* n = v->node();
  auto join = [&](const std::string& s) {
    return prefix.empty() ? s : absl::StrCat(prefix, ".", s);
  };
  if (n->kind() == c10::prim::GetAttr) return join(n->s(c10::attr::name));
  if (n->kind() == c10::prim::CallMethod &&
      n->input(0)->node()->kind() == c10::prim::GetAttr) {
    return join(n->input(0)->node()->s(c10::attr::name)) + " output";
  }
  if (n->kind() == c10::prim::Param) {
    return join(absl::StrCat("input ", v->debugName()));
  }
  std::string kind = n->kind().toUnqualString();
  if (n->kind() == c10::prim::CallFunction) {
    // F.relu and friends: name the function called.
    if (auto fn = n->input(0)->type()->cast<c10::FunctionType>()) {
      kind = fn->function()->name();
    }
  }
  return join(kind + " output");
}

void CollectBlock(const Module& m, const std::string& prefix,
                  torch::jit::Block* block, std::vector<ObserverRef>* out) {
  for (torch::jit::Node* n : block->nodes()) {
    // Observers inside control flow too (a residual add under
    // `if self.use_res:`): missing one left it uncalibrated.
    for (torch::jit::Block* sub : n->blocks()) {
      CollectBlock(m, prefix, sub, out);
    }
    if (n->kind() != c10::prim::CallMethod || n->inputs().size() < 2) {
      continue;
    }
    torch::jit::Node* get = n->input(0)->node();
    if (get->kind() != c10::prim::GetAttr) continue;
    const std::string attr = get->s(c10::attr::name);
    if (!m.hasattr(attr) || !m.attr(attr).isModule()) continue;
    Module sub = m.attr(attr).toModule();
    bool is_weight;
    if (!IsObserver(sub, &is_weight)) continue;
    out->push_back({sub, Describe(prefix, n->input(1)), is_weight});
  }
}

void Collect(const Module& m, const std::string& prefix,
             std::vector<ObserverRef>* out) {
  if (auto method = m.find_method("forward")) {
    CollectBlock(m, prefix, method->graph()->block(), out);
  }
  for (const auto& child : m.named_children()) {
    bool is_weight;
    if (IsObserver(child.value, &is_weight)) continue;
    Collect(child.value,
            prefix.empty() ? child.name : absl::StrCat(prefix, ".", child.name),
            out);
  }
}

}  // namespace

torch::jit::QConfig MakeQConfig(const ObserverOptions& options) {
  return {MakeActivationObserver(options), MakeWeightObserver(options)};
}

torch::jit::QConfig MakeDynamicQConfig(const ObserverOptions& options) {
  return {MakePlaceholderObserver(), MakeWeightObserver(options)};
}

std::vector<ObserverRef> FindObservers(const torch::jit::Module& prepared) {
  std::vector<ObserverRef> out;
  Collect(prepared, "", &out);
  return out;
}

void SetPhase(const std::vector<ObserverRef>& observers, int64_t phase) {
  for (const ObserverRef& o : observers) {
    Module m = o.module;
    m.setattr("phase", phase);
  }
}

bool NeedsHistogram(const ObserverOptions& options) {
  return options.method != RangeMethod::kMinMax;
}

void FreezeQParams(const std::vector<ObserverRef>& observers) {
  for (const ObserverRef& o : observers) {
    if (o.is_weight) continue;  // weights compute theirs in phase 2
    Module m = o.module;
    auto qparams = m.run_method("calculate_qparams").toTuple();
    m.setattr("qscale", qparams->elements()[0].toTensor());
    m.setattr("qzero", qparams->elements()[1].toTensor());
  }
}

void SetMethod(const std::vector<ObserverRef>& observers, RangeMethod method,
               double percentile) {
  for (const ObserverRef& o : observers) {
    if (o.is_weight) continue;
    Module m = o.module;
    m.setattr("method", static_cast<int64_t>(method));
    m.setattr("param", percentile);
  }
}

void CopyActivationState(const ObserverRef& from, const ObserverRef& to) {
  Module dst = to.module;
  for (const char* buffer : {"min_val", "max_val", "histogram"}) {
    dst.setattr(buffer, from.module.attr(buffer).toTensor().clone());
  }
  dst.setattr("seen", from.module.attr("seen"));
}

double MeasuredSqnrDb(const ObserverRef& observer) {
  const double signal = observer.module.attr("signal").toDouble();
  const double noise = observer.module.attr("noise").toDouble();
  if (noise <= 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

uint64_t QuantizedParameterBytes(const torch::jit::Module& prepared,
                                 const std::vector<ObserverRef>& observers) {
  std::set<std::string> quantized;
  for (const ObserverRef& o : observers) {
    if (o.is_weight) quantized.insert(o.target);
  }
  uint64_t bytes = 0;
  for (const auto& p : prepared.named_parameters(/*recurse=*/true)) {
    if (quantized.count(p.name)) {
      const int64_t channels = p.value.dim() > 0 ? p.value.size(0) : 1;
      bytes += p.value.numel() + channels * (sizeof(float) + sizeof(int32_t));
    } else {
      bytes += p.value.nbytes();
    }
  }
  for (const auto& b : prepared.named_buffers(/*recurse=*/true)) {
    if (b.name.find("_observer_") == std::string::npos) {
      bytes += b.value.nbytes();
    }
  }
  return bytes;
}

}  // namespace twinserve
