#include "quant/calibrator.h"

#include <torch/csrc/jit/passes/fold_conv_bn.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "quant/bias_correction.h"
#include "server/runtime/runner.h"
#include "server/runtime/tensor_codec.h"

namespace twinserve {
namespace {

// Runs `s` through `m` in batches (observers record as their phase says).
absl::Status RunThrough(torch::jit::Module& m, const SampleRange& s, int batch,
                        const std::string& stage, const ProgressFn& progress,
                        const std::atomic<bool>* cancel) {
  for (int64_t b = 0; b < s.size(); b += batch) {
    if (cancel != nullptr && cancel->load()) {
      return absl::CancelledError("quantization was cancelled");
    }
    const int64_t e = std::min<int64_t>(s.size(), b + batch);
    auto args = Batch(s, b, e);
    if (!args.ok()) return args.status();
    m.forward(*args);
    if (progress) progress(stage, e, s.size());
  }
  return absl::OkStatus();
}

// Observers keyed by what they observe, with an occurrence count for
// tensors described alike, so that a trial's observers find the calibrated
// ones they stand for.
std::map<std::string, ObserverRef> ByTarget(
    const std::vector<ObserverRef>& observers) {
  std::map<std::string, ObserverRef> out;
  std::map<std::string, int> seen;
  for (const ObserverRef& o : observers) {
    out[absl::StrCat(o.target, "#", seen[o.target]++)] = o;
  }
  return out;
}

torch::jit::QConfigDict Dict(const ObserverOptions& obs,
                             const std::set<std::string>& fp32) {
  torch::jit::QConfigDict dict;
  dict[""] = MakeQConfig(obs);
  for (const std::string& m : fp32) dict[m] = c10::nullopt;
  return dict;
}

}  // namespace

absl::StatusOr<std::vector<c10::IValue>> Batch(const SampleRange& s,
                                               int64_t begin, int64_t end) {
  std::vector<c10::IValue> args;
  for (const HostTensor& t : s.set->Slice(s.begin + begin, s.begin + end)) {
    auto at = ToTorch(t);
    if (!at.ok()) return at.status();
    args.emplace_back(std::move(*at));
  }
  return args;
}

absl::StatusOr<Calibrated> Calibrate(const std::string& fp32_path,
                                     const PrepareOptions& options,
                                     const SampleRange& calib,
                                     const ProgressFn& progress,
                                     const std::atomic<bool>* cancel) {
  torch::NoGradGuard no_grad;
  std::string stage = "preparing";
  Calibrated c;
  c.histograms = options.histograms;
  c.calib = calib;
  c.batch_size = options.batch_size;
  try {
    torch::jit::Module fp32 = torch::jit::load(fp32_path);
    fp32.eval();
    c.base = torch::jit::FoldConvBatchNorm(fp32);
    const int64_t stats_n = std::min(calib.size(), options.stats_samples);
    const BatchFn batches = [&](int64_t b, int64_t e) {
      return Batch(calib, b, e);
    };
    if (options.equalize) {
      stage = "equalizing";
      if (progress) progress(stage, 0, 0);
      auto check = Batch(calib, 0, std::min<int64_t>(calib.size(), 16));
      if (!check.ok()) return check.status();
      auto eq = EqualizeChecked(&c.base, *check);
      if (!eq.ok()) return eq.status();
      c.rescaling = std::move(*eq);
      c.equalized = true;
    }
    stage = "measuring layer inputs";
    if (progress) progress(stage, 0, stats_n);
    auto graph = AnalyzeLayers(c.base);
    if (!graph.ok()) return graph.status();
    c.graph = std::move(*graph);
    auto inputs =
        MeasureLayerInputs(c.base, batches, stats_n, options.batch_size);
    if (!inputs.ok()) return inputs.status();
    c.inputs = std::move(*inputs);
    if (options.smooth_alpha > 0) {
      RescaleResult smooth =
          SmoothLinear(&c.base, c.graph, c.inputs, options.smooth_alpha);
      if (!smooth.rescaled.empty()) {
        // The smoothed layers see other inputs now.
        inputs =
            MeasureLayerInputs(c.base, batches, stats_n, options.batch_size);
        if (!inputs.ok()) return inputs.status();
        c.inputs = std::move(*inputs);
      }
      for (auto& l : smooth.rescaled) c.rescaling.rescaled.push_back(l);
      for (auto& l : smooth.skipped) c.rescaling.skipped.push_back(l);
    }
    ObserverOptions obs;
    obs.per_channel_weights = options.per_channel_weights;
    stage = "inserting observers";
    c.observed = torch::jit::InsertObservers(c.base, "forward", Dict(obs, {}),
                                             /*inplace=*/false,
                                             torch::jit::QuantType::STATIC);
    c.observers = FindObservers(c.observed);
    if (c.observers.empty()) {
      return absl::InvalidArgumentError(
          "the model has no op that static INT8 quantization supports "
          "(conv, linear, ...)");
    }
    SetPhase(c.observers, 0);
    stage = "calibrating (ranges)";
    absl::Status st = RunThrough(c.observed, calib, options.batch_size, stage,
                                 progress, cancel);
    if (!st.ok()) return st;
    if (options.histograms) {
      SetPhase(c.observers, 1);
      stage = "calibrating (histograms)";
      st = RunThrough(c.observed, calib, options.batch_size, stage, progress,
                      cancel);
      if (!st.ok()) return st;
    }
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization failed while ", stage, ": ", TorchErrorMessage(e)));
  }
  return c;
}

absl::StatusOr<Converted> Convert(const Calibrated& c, const Trial& trial,
                                  const SampleRange* sqnr) {
  torch::NoGradGuard no_grad;
  std::string stage = "preparing a trial";
  Converted out;
  try {
    torch::jit::Module base = c.base.clone();
    if (trial.bias_correction) {
      std::set<std::string> layers;
      for (const Layer& l : c.graph.layers) {
        if (!trial.fp32_modules.count(l.path)) layers.insert(l.path);
      }
      BiasCorrectionResult bc = CorrectBiases(&base, c.graph, c.inputs, layers,
                                              trial.per_channel_weights);
      out.bias_corrected = bc.corrected;
      out.notes = std::move(bc.skipped);
    }
    ObserverOptions obs;
    obs.method = trial.method;
    obs.percentile = trial.percentile;
    obs.per_channel_weights = trial.per_channel_weights;
    stage = "inserting observers";
    torch::jit::Module observed = torch::jit::InsertObservers(
        base, "forward", Dict(obs, trial.fp32_modules), /*inplace=*/true,
        torch::jit::QuantType::STATIC);
    const std::vector<ObserverRef> observers = FindObservers(observed);
    if (observers.empty()) {
      return absl::InvalidArgumentError(
          "every quantizable layer is kept in FP32");
    }
    // The calibrated activation state, and this trial's method.
    const auto calibrated = ByTarget(c.observers);
    std::vector<ObserverRef> copied, missing;
    for (const auto& [key, o] : ByTarget(observers)) {
      if (o.is_weight) continue;
      auto it = calibrated.find(key);
      if (it == calibrated.end()) {
        missing.push_back(o);
      } else {
        CopyActivationState(it->second, o);
        copied.push_back(o);
      }
    }
    if (!missing.empty()) {
      stage = "calibrating the tensors this trial adds";
      SetPhase(copied, 3);
      SetPhase(missing, 0);
      absl::Status st =
          RunThrough(observed, c.calib, c.batch_size, stage, nullptr, nullptr);
      if (!st.ok()) return st;
      if (c.histograms) {
        SetPhase(missing, 1);
        st = RunThrough(observed, c.calib, c.batch_size, stage, nullptr,
                        nullptr);
        if (!st.ok()) return st;
      }
    }
    if (!c.histograms && trial.method != RangeMethod::kMinMax) {
      return absl::InvalidArgumentError(
          "this calibration kept no histograms; only minmax can convert it");
    }
    SetMethod(observers, trial.method, trial.percentile);
    stage = "choosing ranges";
    FreezeQParams(observers);
    // Weight observers read their weights in a forward pass (phase 2, which
    // also measures each tensor's SQNR): over `sqnr` when asked, else over
    // a few calibration samples. Reading weights outside a forward
    // (attribute by attribute) disagreed with the forward on ResNet-18.
    SetPhase(observers, 2);
    stage = "measuring";
    SampleRange pass = c.calib;
    pass.end = std::min(pass.end, pass.begin + 4);
    const bool measure = sqnr != nullptr && sqnr->size() > 0;
    absl::Status st = RunThrough(observed, measure ? *sqnr : pass, 32, stage,
                                 nullptr, nullptr);
    if (!st.ok()) return st;
    if (measure) {
      for (const ObserverRef& ref : observers) {
        out.layers.push_back(
            {ref.target, ref.is_weight, MeasuredSqnrDb(ref), true});
      }
    }
    out.parameter_bytes = QuantizedParameterBytes(observed, observers);
    stage = "converting";
    torch::jit::Module q = torch::jit::InsertQuantDeQuant(
        observed, "forward", /*inplace=*/false, /*debug=*/false,
        torch::jit::QuantType::STATIC);
    out.module = torch::jit::Finalize(q, torch::jit::QuantType::STATIC, {});
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization failed while ", stage, ": ", TorchErrorMessage(e)));
  }
  return out;
}

}  // namespace twinserve
