#include "quant/quantizer.h"

#include <ATen/ATen.h>
#include <torch/csrc/jit/passes/fold_conv_bn.h>
#include <torch/csrc/jit/passes/quantization/finalize.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>
#include <torch/csrc/jit/passes/quantization/insert_quant_dequant.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "quant/converters.h"
#include "quant/evaluator.h"
#include "quant/observers.h"
#include "server/common/file_util.h"
#include "server/runtime/tensor_codec.h"

namespace twinserve {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

absl::StatusOr<std::vector<c10::IValue>> Batch(const SampleRange& s, int64_t b,
                                               int64_t e) {
  std::vector<c10::IValue> args;
  for (const HostTensor& t : s.set->Slice(s.begin + b, s.begin + e)) {
    auto at = ToTorch(t);
    if (!at.ok()) return at.status();
    args.emplace_back(std::move(*at));
  }
  return args;
}

// One pass of the pipeline with `excluded` modules kept in FP32. Writes the
// finalized module to `path`.
absl::StatusOr<Conversion> QuantizeOnce(
    const QuantizeInputs& in, const QuantizeOptions& o,
    const SampleRange& calib, const SampleRange& eval,
    const std::vector<std::string>& excluded, const std::string& path,
    const std::function<void(const QuantizeProgress&)>& progress,
    const std::atomic<bool>* cancel) {
  ObserverOptions obs;
  obs.method = o.method;
  obs.percentile = o.percentile;
  obs.per_channel_weights = o.per_channel_weights;
  torch::NoGradGuard no_grad;
  std::string stage = "preparing";
  try {
    torch::jit::Module fp32 = torch::jit::load(in.fp32_path);
    fp32.eval();
    torch::jit::Module folded = torch::jit::FoldConvBatchNorm(fp32);
    torch::jit::QConfigDict dict;
    dict[""] = MakeQConfig(obs);
    for (const std::string& m : excluded) dict[m] = c10::nullopt;
    torch::jit::Module prepared =
        torch::jit::InsertObservers(folded, "forward", dict, /*inplace=*/false,
                                    torch::jit::QuantType::STATIC);
    const auto observers = FindObservers(prepared);
    if (observers.empty()) {
      return absl::InvalidArgumentError(
          "the model has no op that static INT8 quantization supports "
          "(conv, linear, ...)");
    }

    const int passes = NeedsHistogram(obs) ? 2 : 1;
    const int64_t total = passes * calib.size() + eval.size();
    int64_t done = 0;
    auto run = [&](const SampleRange& s,
                   const std::string& name) -> absl::Status {
      stage = name;
      for (int64_t b = 0; b < s.size(); b += o.batch_size) {
        if (cancel != nullptr && cancel->load()) {
          return absl::CancelledError("quantization was cancelled");
        }
        const int64_t e = std::min<int64_t>(s.size(), b + o.batch_size);
        auto args = Batch(s, b, e);
        if (!args.ok()) return args.status();
        prepared.forward(*args);
        done += e - b;
        if (progress) progress({name, done, total});
      }
      return absl::OkStatus();
    };
    SetPhase(observers, 0);
    absl::Status st = run(calib, "calibrating (ranges)");
    if (!st.ok()) return st;
    if (passes == 2) {
      SetPhase(observers, 1);
      st = run(calib, "calibrating (histograms)");
      if (!st.ok()) return st;
    }
    stage = "choosing ranges";
    FreezeQParams(observers);
    SetPhase(observers, 2);
    st = run(eval, "measuring layer SQNR");
    if (!st.ok()) return st;
    Conversion once;
    for (const ObserverRef& ref : observers) {
      once.layers.push_back(
          {ref.target, ref.is_weight, MeasuredSqnrDb(ref), true});
    }
    once.parameter_bytes = QuantizedParameterBytes(prepared, observers);
    stage = "converting";
    if (progress) progress({stage, done, total});
    torch::jit::Module quantized = torch::jit::InsertQuantDeQuant(
        prepared, "forward", /*inplace=*/false, /*debug=*/false,
        torch::jit::QuantType::STATIC);
    quantized =
        torch::jit::Finalize(quantized, torch::jit::QuantType::STATIC, {});
    quantized.save(path);
    return once;
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization failed while ", stage, ": ", TorchErrorMessage(e)));
  }
}

// Module path of an activation observed at a submodule's output
// ("block1.conv1 output" -> "block1.conv1"), or "" for other tensors.
std::string ModuleOf(const LayerReport& l) {
  const std::string suffix = " output";
  if (l.is_weight || !absl::EndsWith(l.name, suffix)) return "";
  const std::string path = l.name.substr(0, l.name.size() - suffix.size());
  if (absl::StrContains(path, " ")) return "";
  return path;
}

}  // namespace

absl::StatusOr<QuantizeResult> QuantizeModel(
    const QuantizeInputs& in, const QuantizeOptions& options,
    const std::string& output_path,
    const std::function<void(const QuantizeProgress&)>& progress,
    const std::atomic<bool>* cancel) {
  const auto start = Clock::now();
  if (in.calibration == nullptr || in.calibration->num_samples() == 0) {
    return absl::FailedPreconditionError(
        "the calibration set is empty; upload samples first");
  }
  if (in.fp32_runner == nullptr) {
    return absl::FailedPreconditionError("the FP32 variant is not loaded");
  }
  // Calibration and evaluation samples.
  SampleRange calib{in.calibration, 0, in.calibration->num_samples()};
  SampleRange eval;
  if (in.evaluation != nullptr && in.evaluation->num_samples() > 0) {
    eval = {in.evaluation, 0, in.evaluation->num_samples()};
  } else {
    const int64_t n = calib.size();
    const int64_t held =
        n >= 2
            ? std::max<int64_t>(1, std::llround(n * options.holdout_fraction))
            : 0;
    eval = held > 0 ? SampleRange{in.calibration, n - held, n} : calib;
    calib.end = n - held;
  }
  calib.end =
      std::min(calib.end, calib.begin + options.max_calibration_samples);
  eval.end = std::min(eval.end, eval.begin + options.max_eval_samples);

  QuantizationReport report;
  report.method = RangeMethodName(options.method);
  report.percentile = options.percentile;
  report.per_channel_weights = options.per_channel_weights;
  report.calibration_samples = calib.size();
  report.eval_samples = eval.size();
  report.fp32_serialized_bytes = in.fp32_serialized_bytes;
  report.fp32_parameter_bytes = in.fp32_runner->parameter_bytes();

  std::vector<std::string> excluded = options.fp32_modules;
  RunnerOptions int8_options;
  int8_options.optimize = false;  // Finalize froze it already
  std::unique_ptr<Runner> runner;
  Conversion once;
  EvalMetrics metrics;
  report.mode = QuantModeName(options.mode);
  const bool is_static = options.mode == QuantMode::kStatic;
  if (!is_static) report.calibration_samples = 0;
  for (int trial = 1;; ++trial) {
    if (!is_static && progress) progress({"converting", 0, 0});
    auto q = is_static ? QuantizeOnce(in, options, calib, eval, excluded,
                                      output_path, progress, cancel)
                       : ConvertWithoutCalibration(in.fp32_path, in.signature,
                                                   options, output_path);
    if (!q.ok()) return q.status();
    once = std::move(*q);
    auto loaded = Runner::Load(output_path, in.signature, int8_options);
    if (!loaded.ok()) {
      return absl::InternalError(absl::StrCat(
          "the quantized model does not run: ", loaded.status().message()));
    }
    runner = std::move(*loaded);
    if (progress) progress({"evaluating", 0, eval.size()});
    auto m =
        Evaluate(*in.fp32_runner, *runner, eval, options.batch_size, cancel);
    if (!m.ok()) return m.status();
    metrics = *m;
    report.trials = trial;
    report.criterion_met = CriterionMet(options, metrics);
    if (report.criterion_met || !options.auto_fallback || !is_static) break;
    if (trial >= options.max_trials ||
        Seconds(start) > options.time_limit_seconds) {
      report.fallback_log.push_back(
          absl::StrCat("stopped after ", trial, " trials and ",
                       static_cast<int>(Seconds(start)),
                       " s with the criterion still failing"));
      break;
    }
    // Return the quantized layer with the worst output SQNR to FP32.
    const LayerReport* worst = nullptr;
    for (const LayerReport& l : once.layers) {
      const std::string mod = ModuleOf(l);
      if (mod.empty() || std::count(excluded.begin(), excluded.end(), mod)) {
        continue;
      }
      if (worst == nullptr || l.sqnr_db < worst->sqnr_db) worst = &l;
    }
    if (worst == nullptr) {
      report.fallback_log.push_back(
          "no quantized layer left to return to FP32");
      break;
    }
    report.fallback_log.push_back(absl::StrFormat(
        "trial %d: top-1 agreement %.2f%%%s; %s has the lowest SQNR "
        "(%.1f dB) and goes back to FP32",
        trial, metrics.agreement,
        metrics.fp32_acc >= 0
            ? absl::StrFormat(", accuracy %.2f%% vs FP32 %.2f%%",
                              metrics.int8_acc, metrics.fp32_acc)
            : "",
        ModuleOf(*worst), worst->sqnr_db));
    excluded.push_back(ModuleOf(*worst));
  }
  std::set<std::string> kept(excluded.begin(), excluded.end());
  for (LayerReport& l : once.layers) {
    const std::string mod = ModuleOf(l);
    if (!mod.empty() && kept.count(mod)) l.quantized = false;
  }
  report.layers = once.layers;
  report.fp32_modules = excluded;
  report.top1_agreement = metrics.agreement;
  report.cosine_mean = metrics.cosine;
  report.max_abs_error = metrics.max_abs;
  report.mean_abs_error = metrics.mean_abs;
  report.fp32_accuracy = metrics.fp32_acc;
  report.int8_accuracy = metrics.int8_acc;
  report.int8_parameter_bytes = once.parameter_bytes;
  if (auto bytes = ReadFile(output_path); bytes.ok()) {
    report.int8_serialized_bytes = bytes->size();
  }

  if (cancel != nullptr && cancel->load()) {
    return absl::CancelledError("quantization was cancelled");
  }
  if (progress) progress({"measuring latency", 0, 0});
  const auto b1 = LatencyInput(eval, 1);
  const auto b32 = LatencyInput(eval, 32);
  const int runs = std::max(3, options.latency_runs);
  report.fp32_latency_ms_b1 = MedianLatencyMs(*in.fp32_runner, b1, runs);
  report.int8_latency_ms_b1 = MedianLatencyMs(*runner, b1, runs);
  report.fp32_latency_ms_b32 =
      MedianLatencyMs(*in.fp32_runner, b32, std::max(3, runs / 3));
  report.int8_latency_ms_b32 =
      MedianLatencyMs(*runner, b32, std::max(3, runs / 3));
  report.duration_seconds = Seconds(start);

  if (!report.criterion_met) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "INT8 misses the accuracy criterion: top-1 agreement %.2f%% (allowed "
        "loss %.2f points)%s%s",
        metrics.agreement, options.max_agreement_loss,
        metrics.fp32_acc >= 0
            ? absl::StrFormat(", accuracy %.2f%% vs FP32 %.2f%% (allowed loss "
                              "%.2f)",
                              metrics.int8_acc, metrics.fp32_acc,
                              options.max_accuracy_loss)
            : "",
        options.auto_fallback ? "; " + absl::StrJoin(report.fallback_log, "; ")
                              : "; enable auto_fallback to return sensitive "
                                "layers to FP32"));
  }
  return QuantizeResult{std::move(runner), std::move(report)};
}

}  // namespace twinserve
