#include "quant/linear_convert.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/runtime/graph_iterator.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu_features.h"
#include "kernels/packed_linear.h"
#include "quant/calibrator.h"
#include "quant/layer_graph.h"
#include "quant/layer_stats.h"
#include "server/runtime/linear_ops.h"
#include "server/runtime/runner.h"

namespace twinserve {
namespace {

using torch::jit::Node;
using torch::jit::Value;

// The tensors a twinserve.linear_* call takes, packed from FP32 weights.
struct PackedTensors {
  at::Tensor q, scale, zero, row_sum, input_scale;  // undefined if unused
  int64_t group = 0;                                // INT4 only
  bool dynamic = false;
  int64_t gemm_from_rows = -1;  // -1: measure it
};

c10::optional<at::Tensor> Opt(const at::Tensor& t) {
  return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt;
}

// One call of the op `t` stands for.
at::Tensor RunPacked(const PackedTensors& t, const at::Tensor& x, int64_t k,
                     int64_t gemm_from_rows) {
  if (t.group > 0) {
    return LinearInt4WeightOp(x, t.q, t.scale, t.zero, Opt(t.input_scale),
                              c10::nullopt, k, t.group, gemm_from_rows);
  }
  if (t.dynamic) {
    return LinearInt8DynamicOp(x, t.q, t.scale, t.row_sum, c10::nullopt, k,
                               gemm_from_rows);
  }
  return LinearInt8WeightOp(x, t.q, t.scale, c10::nullopt, k, gemm_from_rows);
}

PackedTensors ToTensors(const PackedInt8& p) {
  PackedTensors t;
  t.q = at::empty({p.n, p.k_padded}, at::kChar);
  std::copy(p.q.begin(), p.q.end(), t.q.data_ptr<int8_t>());
  t.scale = at::empty({p.n}, at::kFloat);
  std::copy(p.scale.begin(), p.scale.end(), t.scale.data_ptr<float>());
  t.row_sum = at::empty({p.n}, at::kInt);
  std::copy(p.row_sum.begin(), p.row_sum.end(), t.row_sum.data_ptr<int32_t>());
  return t;
}

PackedTensors ToTensors(const PackedInt4& p) {
  PackedTensors t;
  const int64_t groups = p.k_padded / p.group;
  t.group = p.group;
  t.q = at::empty({p.n, p.k_padded / 2}, at::kByte);
  std::copy(p.q.begin(), p.q.end(), t.q.data_ptr<uint8_t>());
  t.scale = at::empty({p.n, groups}, at::kFloat);
  std::copy(p.scale.begin(), p.scale.end(), t.scale.data_ptr<float>());
  t.zero = at::empty({p.n, groups}, at::kFloat);
  std::copy(p.zero.begin(), p.zero.end(), t.zero.data_ptr<float>());
  if (!p.input_scale.empty()) {
    t.input_scale = at::empty({p.k}, at::kFloat);
    std::copy(p.input_scale.begin(), p.input_scale.end(),
              t.input_scale.data_ptr<float>());
  }
  return t;
}

// sum_j E[x_j^2] * sum_c (W - Q(W))_cj^2: the expected squared output error
// of the layer if its inputs were uncorrelated.
double WeightedError(const at::Tensor& w, const std::vector<float>& wq,
                     const at::Tensor& mean_sq) {
  at::Tensor d =
      w - at::from_blob(const_cast<float*>(wq.data()), w.sizes(), at::kFloat);
  return ((d * d).sum(0) * mean_sq).sum().item<double>();
}

struct Int4Choice {
  PackedInt4 packed;
  double alpha = -1;
  double error_ratio = -1;
};

// Round to nearest, or the activation-aware scaling that minimises the
// weighted error (see the header).
Int4Choice PackInt4Searched(const at::Tensor& w, int64_t group,
                            const ChannelStats* stats) {
  const int64_t n = w.size(0), k = w.size(1);
  const float* wp = w.data_ptr<float>();
  Int4Choice best;
  best.packed = PackInt4(wp, n, k, group);
  if (stats == nullptr || !stats->mean_abs.defined() ||
      stats->mean_abs.numel() != k) {
    return best;
  }
  const at::Tensor mean_sq = stats->mean_sq.to(at::kFloat);
  const at::Tensor s = stats->mean_abs.to(at::kFloat).clamp_min(1e-6);
  const double rtn = WeightedError(w, Unpack(best.packed), mean_sq);
  double best_error = rtn;
  best.alpha = 0;
  for (int step = 1; step <= 10; ++step) {
    const double alpha = step / 10.0;
    at::Tensor sc = s.pow(alpha);
    // Centred on 1 so the weights' range stays put on average.
    sc = (sc / std::sqrt(sc.max().item<double>() * sc.min().item<double>()))
             .clamp(1e-4, 1e4)
             .contiguous();
    PackedInt4 p = PackInt4(wp, n, k, group, sc.data_ptr<float>());
    const double e = WeightedError(w, Unpack(p), mean_sq);
    if (e < best_error) {
      best_error = e;
      best.alpha = alpha;
      best.packed = std::move(p);
    }
  }
  best.error_ratio = rtn > 0 ? best_error / rtn : 1;
  return best;
}

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

// The fewest rows (1, 2, 4, ..., 64) from which the dequantized GEMM beats
// the GEMV kernel for this layer here; 0 if it never does.
int64_t MeasureGemmCrossover(const PackedTensors& t, int64_t k) {
  for (int64_t m = 1; m <= 64; m *= 2) {
    const at::Tensor x = at::randn({m, k});
    const double gemv = MedianMs([&] { RunPacked(t, x, k, 0); }, 5);
    const double gemm = MedianMs([&] { RunPacked(t, x, k, 1); }, 5);
    if (gemm < gemv) return m;
  }
  return 0;
}

// LibTorch's dynamic INT8 linear (oneDNN here) on one layer's weights, as
// its dynamic pass would make it: per-channel qint8, prepacked.
c10::IValue LibTorchPrepack(const at::Tensor& w) {
  const at::Tensor scales =
      (w.abs().amax(1) / 127.0).clamp_min(1e-12).to(at::kDouble);
  const at::Tensor zeros = at::zeros({w.size(0)}, at::kLong);
  torch::jit::Stack stack = {
      at::quantize_per_channel(w, scales, zeros, 0, at::kQInt8), c10::IValue()};
  c10::Dispatcher::singleton()
      .findSchemaOrThrow("quantized::linear_prepack", "")
      .callBoxed(&stack);
  return stack.at(0);
}

double LibTorchDynamicMs(const c10::IValue& packed, const at::Tensor& x,
                         int runs) {
  const auto op = c10::Dispatcher::singleton().findSchemaOrThrow(
      "quantized::linear_dynamic", "");
  return MedianMs(
      [&] {
        torch::jit::Stack stack = {x, packed, false};
        op.callBoxed(&stack);
      },
      runs);
}

// A Linear layer of the FP32 model: its module path and weights.
struct LinearLayer {
  std::string path;
  at::Tensor weight;
};

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

// How one layer is packed: nullopt leaves it as it is.
using PackFn = std::function<c10::optional<PackedTensors>(
    const std::string& layer, const at::Tensor& weight,
    LinearKernelReport* report)>;

// Replaces every aten::linear of the frozen `module` whose weights are a
// constant FP32 matrix by the twinserve op `pack` chooses, with the GEMM
// crossover measured here; one report row per such layer.
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
    c10::optional<PackedTensors> t = pack(report.layer, *weight, &report);
    if (!t.has_value()) {
      reports.push_back(report);
      continue;
    }
    if (t->gemm_from_rows >= 0) {
      report.gemm_from_rows = t->gemm_from_rows;
    } else {
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

}  // namespace

absl::StatusOr<Conversion> ConvertWeightOnly(const std::string& fp32_path,
                                             const QuantizeOptions& o,
                                             const SampleRange& calibration,
                                             const std::string& output_path) {
  const bool int4 = o.mode == QuantMode::kInt4Weight;
  if (!int4 && o.mode != QuantMode::kInt8Weight) {
    return absl::InvalidArgumentError("not a weight-only mode");
  }
  torch::NoGradGuard no_grad;
  std::string stage = "loading";
  try {
    torch::jit::Module fp32 = torch::jit::load(fp32_path);
    absl::Cleanup release = [&fp32] { ReleaseCompilationUnit(fp32); };
    fp32.eval();
    stage = "finding the Linear layers";
    const std::vector<LinearLayer> layers = FindLinearLayers(fp32);
    std::map<std::string, ChannelStats> stats;
    if (int4 && o.activation_aware && calibration.size() > 0 &&
        !layers.empty()) {
      stage = "measuring the Linear layers' inputs";
      const int64_t n = std::min(calibration.size(), o.max_calibration_samples);
      auto measured = MeasureLayerInputs(
          fp32, [&](int64_t b, int64_t e) { return Batch(calibration, b, e); },
          n, o.batch_size);
      if (!measured.ok()) return measured.status();
      stats = std::move(*measured);
    }
    const std::set<std::string> keep(o.fp32_modules.begin(),
                                     o.fp32_modules.end());
    stage = "freezing";
    // A clone sharing fp32's unit, which `release` frees.
    torch::jit::Module frozen = torch::jit::freeze_module(fp32);
    stage = "packing";
    Conversion out;
    out.linear_kernels = RewriteLinears(
        frozen, layers,
        [&](const std::string& layer, const at::Tensor& weight,
            LinearKernelReport* report) -> c10::optional<PackedTensors> {
          if (keep.count(layer) > 0) {
            report->kernel = "fp32 (asked)";
            return c10::nullopt;
          }
          const at::Tensor w = weight.contiguous();
          if (!int4) {
            report->kernel = "twinserve int8-weight";
            return ToTensors(
                PackInt8(w.data_ptr<float>(), w.size(0), w.size(1)));
          }
          auto s = stats.find(layer);
          Int4Choice c = PackInt4Searched(
              w, o.group_size, s == stats.end() ? nullptr : &s->second);
          report->awq_alpha = c.alpha;
          report->awq_error_ratio = c.error_ratio;
          report->kernel =
              absl::StrCat("twinserve int4-weight g", o.group_size);
          return ToTensors(c.packed);
        },
        &out.parameter_bytes);
    if (!AnyPacked(out.linear_kernels)) {
      return absl::InvalidArgumentError(
          "the model has no Linear layer with constant weights to pack; "
          "use mode static for convolutions");
    }
    out.kernel_path = KernelPathName(BestKernelPath());
    stage = "saving";
    frozen.save(output_path);
    return out;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only conversion failed while ", stage, ": ",
                     TorchErrorMessage(e)));
  }
}

absl::StatusOr<Conversion> ConvertDynamic(const std::string& fp32_path,
                                          const Signature& signature,
                                          const QuantizeOptions& o,
                                          const std::string& output_path) {
  torch::NoGradGuard no_grad;
  std::string stage = "loading";
  std::vector<LinearKernelReport> choices;
  std::vector<LinearLayer> ours;
  std::map<std::string, int64_t> crossover_of;
  std::map<std::pair<int64_t, int64_t>, LinearKernelReport> timed;
  QuantizeOptions libtorch_options = o;
  try {
    torch::jit::Module fp32 = torch::jit::load(fp32_path);
    absl::Cleanup release = [&fp32] { ReleaseCompilationUnit(fp32); };
    fp32.eval();
    const std::set<std::string> keep(o.fp32_modules.begin(),
                                     o.fp32_modules.end());
    // Each layer's shape, both kernels, batch 1 and 32: the per-row cost
    // summed over the two sizes decides (a model served at batch 1 and
    // one served in batches both count).
    for (const LinearLayer& l : FindLinearLayers(fp32)) {
      LinearKernelReport r;
      r.layer = l.path;
      r.out_features = l.weight.size(0);
      r.in_features = l.weight.size(1);
      if (keep.count(l.path) > 0) {
        r.kernel = "fp32 (asked)";
        choices.push_back(r);
        continue;
      }
      stage = absl::StrCat("timing ", l.path);
      const auto shape = std::make_pair(r.out_features, r.in_features);
      if (auto same = timed.find(shape); same != timed.end()) {
        // A layer of a shape already timed: same choice.
        const std::string layer = r.layer;
        r = same->second;
        r.layer = layer;
        if (r.kernel == "twinserve int8-dynamic") {
          ours.push_back(l);
          crossover_of[l.path] = r.gemm_from_rows;
          libtorch_options.fp32_modules.push_back(l.path);
        }
        choices.push_back(r);
        continue;
      }
      const at::Tensor w = l.weight.contiguous();
      PackedTensors t =
          ToTensors(PackInt8(w.data_ptr<float>(), w.size(0), w.size(1)));
      t.dynamic = true;
      const int64_t crossover = MeasureGemmCrossover(t, r.in_features);
      r.gemm_from_rows = crossover;
      const c10::IValue packed = LibTorchPrepack(w);
      const at::Tensor x1 = at::randn({1, r.in_features});
      const at::Tensor x32 = at::randn({32, r.in_features});
      r.twinserve_ms_b1 =
          MedianMs([&] { RunPacked(t, x1, r.in_features, crossover); }, 15);
      r.libtorch_ms_b1 = LibTorchDynamicMs(packed, x1, 15);
      const double ours32 =
          MedianMs([&] { RunPacked(t, x32, r.in_features, crossover); }, 5);
      const double theirs32 = LibTorchDynamicMs(packed, x32, 5);
      const bool mine =
          r.twinserve_ms_b1 + ours32 / 32 < r.libtorch_ms_b1 + theirs32 / 32;
      r.kernel = mine ? "twinserve int8-dynamic" : "libtorch int8-dynamic";
      if (mine) {
        ours.push_back(l);
        crossover_of[l.path] = crossover;
        libtorch_options.fp32_modules.push_back(l.path);
      }
      timed[shape] = r;
      choices.push_back(r);
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dynamic conversion failed while ", stage, ": ", TorchErrorMessage(e)));
  }
  // LibTorch's pass for its layers (ours left FP32 by it), then ours.
  bool libtorch_layers = false;
  for (const LinearKernelReport& r : choices) {
    libtorch_layers |= r.kernel.rfind("libtorch", 0) == 0;
  }
  auto out = ConvertWithoutCalibration(fp32_path, signature, libtorch_options,
                                       output_path);
  std::string source = output_path;
  if (!out.ok()) {
    // Only "nothing to quantize" is expected, when every Linear is ours
    // (LibTorch's pass would still have taken LSTMs).
    if (libtorch_layers || ours.empty()) return out.status();
    out = Conversion{};
    source = fp32_path;
  }
  out->kernel_path = KernelPathName(BestKernelPath());
  // LibTorch's packed weights are not tensor constants: about n * k bytes
  // and a scale per channel each.
  uint64_t libtorch_bytes = 0;
  for (const LinearKernelReport& r : choices) {
    if (r.kernel.rfind("libtorch", 0) == 0) {
      libtorch_bytes += r.out_features * (r.in_features + 4);
    }
  }
  if (!ours.empty()) {
    stage = "packing";
    try {
      torch::jit::Module m = torch::jit::load(source);
      absl::Cleanup release = [&m] { ReleaseCompilationUnit(m); };
      m.eval();
      torch::jit::Module frozen = torch::jit::freeze_module(m);
      RewriteLinears(
          frozen, ours,
          [&](const std::string& layer, const at::Tensor& weight,
              LinearKernelReport*) -> c10::optional<PackedTensors> {
            auto mine = crossover_of.find(layer);
            if (mine == crossover_of.end()) {
              return c10::nullopt;  // LibTorch's, or asked to stay FP32
            }
            const at::Tensor w = weight.contiguous();
            PackedTensors t =
                ToTensors(PackInt8(w.data_ptr<float>(), w.size(0), w.size(1)));
            t.dynamic = true;
            t.gemm_from_rows = mine->second;
            return t;
          },
          &out->parameter_bytes);
      out->parameter_bytes += libtorch_bytes;
      stage = "saving";
      frozen.save(output_path);
    } catch (const std::exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("dynamic conversion failed while ", stage, ": ",
                       TorchErrorMessage(e)));
    }
  }
  out->linear_kernels = std::move(choices);
  return out;
}

}  // namespace twinserve
