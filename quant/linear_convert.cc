#include "quant/linear_convert.h"

#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu_features.h"
#include "kernels/packed_linear.h"
#include "quant/awq.h"
#include "quant/calibrator.h"
#include "quant/layer_stats.h"
#include "quant/linear_rewrite.h"
#include "server/runtime/linear_ops.h"
#include "server/runtime/runner.h"

namespace twinserve {
namespace {

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

constexpr char kOurs[] = "twinserve int8-dynamic";

PackedLinear PackDynamic(const at::Tensor& weight) {
  const at::Tensor w = weight.contiguous();
  return ToTensors(PackInt8(w.data_ptr<float>(), w.size(0), w.size(1)),
                   /*dynamic=*/true);
}

// Both dynamic kernels on one layer's weights.
struct DynamicTiming {
  int64_t gemm_from_rows = 0;  // ours
  double twinserve_ms_b1 = 0, libtorch_ms_b1 = 0;
  bool ours = false;
};

// Batch 1 and 32: the per-row cost summed over the two sizes decides (a
// model served at batch 1 and one served in batches both count).
DynamicTiming TimeDynamicKernels(const at::Tensor& weight) {
  const int64_t k = weight.size(1);
  const PackedLinear t = PackDynamic(weight);
  const c10::IValue packed = LibTorchPrepack(weight.contiguous());
  const at::Tensor x1 = at::randn({1, k});
  const at::Tensor x32 = at::randn({32, k});
  DynamicTiming d;
  d.gemm_from_rows = MeasureGemmCrossover(t, k);
  d.twinserve_ms_b1 =
      MedianMs([&] { RunPacked(t, x1, k, d.gemm_from_rows); }, 15);
  d.libtorch_ms_b1 = LibTorchDynamicMs(packed, x1, 15);
  const double ours32 =
      MedianMs([&] { RunPacked(t, x32, k, d.gemm_from_rows); }, 5);
  const double theirs32 = LibTorchDynamicMs(packed, x32, 5);
  d.ours = d.twinserve_ms_b1 + ours32 / 32 < d.libtorch_ms_b1 + theirs32 / 32;
  return d;
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
            LinearKernelReport* report) -> c10::optional<PackedLinear> {
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
          Int4Choice c = PackInt4ActivationAware(
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
  std::map<std::pair<int64_t, int64_t>, DynamicTiming> timed;
  QuantizeOptions libtorch_options = o;
  try {
    torch::jit::Module fp32 = torch::jit::load(fp32_path);
    absl::Cleanup release = [&fp32] { ReleaseCompilationUnit(fp32); };
    fp32.eval();
    const std::set<std::string> keep(o.fp32_modules.begin(),
                                     o.fp32_modules.end());
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
      // Layers of one shape share a timing, and so a choice.
      const auto shape = std::make_pair(r.out_features, r.in_features);
      auto timing = timed.find(shape);
      if (timing == timed.end()) {
        timing = timed.emplace(shape, TimeDynamicKernels(l.weight)).first;
      }
      const DynamicTiming& t = timing->second;
      r.gemm_from_rows = t.gemm_from_rows;
      r.twinserve_ms_b1 = t.twinserve_ms_b1;
      r.libtorch_ms_b1 = t.libtorch_ms_b1;
      r.kernel = t.ours ? kOurs : "libtorch int8-dynamic";
      if (t.ours) {
        ours.push_back(l);
        crossover_of[l.path] = t.gemm_from_rows;
        libtorch_options.fp32_modules.push_back(l.path);
      }
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
              LinearKernelReport* report) -> c10::optional<PackedLinear> {
            auto mine = crossover_of.find(layer);
            if (mine == crossover_of.end()) {
              return c10::nullopt;  // LibTorch's, or asked to stay FP32
            }
            report->kernel = kOurs;
            report->gemm_from_rows = mine->second;
            return PackDynamic(weight);
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
