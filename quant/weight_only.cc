#include "quant/weight_only.h"

#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/csrc/jit/runtime/graph_iterator.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

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
  int64_t group = 0;
};

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
  at::Tensor d = w - at::from_blob(const_cast<float*>(wq.data()), w.sizes(),
                                   at::kFloat);
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

// The fewest rows (1, 2, 4, ..., 64) from which the dequantized GEMM beats
// the GEMV kernel for this layer here; 0 if it never does.
int64_t MeasureGemmCrossover(const PackedTensors& t, int64_t k) {
  for (int64_t m = 1; m <= 64; m *= 2) {
    const at::Tensor x = at::randn({m, k});
    auto run = [&](int64_t gemm_from_rows) {
      return [&, gemm_from_rows] {
        if (t.group > 0) {
          LinearInt4WeightOp(x, t.q, t.scale, t.zero,
                             t.input_scale.defined()
                                 ? c10::optional<at::Tensor>(t.input_scale)
                                 : c10::nullopt,
                             c10::nullopt, k, t.group, gemm_from_rows);
        } else {
          LinearInt8WeightOp(x, t.q, t.scale, c10::nullopt, k,
                             gemm_from_rows);
        }
      };
    };
    const double gemv = MedianMs(run(0), 5);
    const double gemm = MedianMs(run(1), 5);
    if (gemm < gemv) return m;
  }
  return 0;
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

    // Module paths of the Linear layers, by their weights' storage: the
    // frozen graph keeps the tensors but not the paths.
    stage = "finding the Linear layers";
    std::map<const void*, std::string> path_of;
    std::map<std::string, ChannelStats> stats;
    if (auto layers = AnalyzeLayers(fp32); layers.ok()) {
      for (const Layer& l : layers->layers) {
        if (!l.linear) continue;
        at::Tensor w = SubmoduleAt(fp32, l.path).attr("weight").toTensor();
        path_of[w.data_ptr()] = l.path;
      }
      if (int4 && o.activation_aware && calibration.size() > 0) {
        stage = "measuring the Linear layers' inputs";
        const int64_t n =
            std::min(calibration.size(), o.max_calibration_samples);
        auto measured = MeasureLayerInputs(
            fp32,
            [&](int64_t b, int64_t e) { return Batch(calibration, b, e); }, n,
            o.batch_size);
        if (!measured.ok()) return measured.status();
        stats = std::move(*measured);
      }
    }
    const std::set<std::string> keep(o.fp32_modules.begin(),
                                     o.fp32_modules.end());

    stage = "freezing";
    torch::jit::Module frozen = torch::jit::freeze_module(fp32);
    // `frozen` is a clone: it shares fp32's unit, released above.
    auto graph = frozen.get_method("forward").graph();
    Conversion out;
    const KernelPath path = BestKernelPath();
    int index = 0;
    for (Node* node : LinearNodes(graph)) {
      const int this_index = index++;
      auto weight = ConstantTensor(node->input(1));
      if (!weight.has_value() || weight->dim() != 2 ||
          weight->scalar_type() != at::kFloat) {
        continue;  // weights computed at run time: nothing to pack
      }
      c10::optional<at::Tensor> bias = ConstantTensor(node->input(2));
      auto known = path_of.find(weight->data_ptr());
      LinearKernelReport report;
      report.layer = known != path_of.end()
                         ? known->second
                         : absl::StrCat("linear #", this_index);
      report.out_features = weight->size(0);
      report.in_features = weight->size(1);
      if (keep.count(report.layer) > 0) {
        report.kernel = "fp32 (asked)";
        out.linear_kernels.push_back(report);
        continue;
      }
      stage = absl::StrCat("packing ", report.layer);
      const at::Tensor w = weight->contiguous();
      PackedTensors t;
      if (int4) {
        auto s = stats.find(report.layer);
        Int4Choice c = PackInt4Searched(
            w, o.group_size, s == stats.end() ? nullptr : &s->second);
        report.awq_alpha = c.alpha;
        report.awq_error_ratio = c.error_ratio;
        t = ToTensors(c.packed);
        report.kernel = absl::StrCat("twinserve int4-weight g", o.group_size);
      } else {
        t = ToTensors(
            PackInt8(w.data_ptr<float>(), report.out_features, report.in_features));
        report.kernel = "twinserve int8-weight";
      }
      stage = absl::StrCat("timing ", report.layer);
      report.gemm_from_rows = MeasureGemmCrossover(t, report.in_features);

      torch::jit::WithInsertPoint guard(node);
      std::vector<torch::jit::NamedValue> args = {
          node->input(0), c10::IValue(t.q), c10::IValue(t.scale)};
      if (int4) {
        args.emplace_back(c10::IValue(t.zero));
        args.emplace_back(t.input_scale.defined() ? c10::IValue(t.input_scale)
                                                  : c10::IValue());
      }
      args.emplace_back(bias.has_value() ? c10::IValue(bias->contiguous())
                                         : c10::IValue());
      args.emplace_back(c10::IValue(report.in_features));
      if (int4) args.emplace_back(c10::IValue(t.group));
      args.emplace_back(c10::IValue(report.gemm_from_rows));
      Value* call = graph->insert(
          c10::Symbol::fromQualString(int4 ? "twinserve::linear_int4_weight"
                                           : "twinserve::linear_int8_weight"),
          args);
      node->output()->replaceAllUsesWith(call);
      node->destroy();
      out.linear_kernels.push_back(report);
    }
    bool any = false;
    for (const auto& l : out.linear_kernels) any |= l.kernel != "fp32 (asked)";
    if (!any) {
      return absl::InvalidArgumentError(
          "the model has no Linear layer with constant weights to pack; "
          "use mode static for convolutions");
    }
    torch::jit::EliminateDeadCode(graph);
    for (Node* n : graph->nodes()) {
      if (n->kind() != c10::prim::Constant) continue;
      if (auto t = ConstantTensor(n->output()); t.has_value()) {
        out.parameter_bytes += t->nbytes();
      }
    }
    out.kernel_path = KernelPathName(path);
    stage = "saving";
    frozen.save(output_path);
    return out;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight-only conversion failed while ", stage, ": ",
        TorchErrorMessage(e)));
  }
}

}  // namespace twinserve
