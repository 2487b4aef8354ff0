#include "quant/quantizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "quant/converters.h"
#include "quant/evaluator.h"
#include "quant/linear_convert.h"
#include "quant/static_recipe.h"
#include "server/common/file_util.h"

namespace twinserve {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
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
  report.mode = QuantModeName(options.mode);
  report.method = RangeMethodName(options.method);
  report.percentile = options.percentile;
  report.per_channel_weights = options.per_channel_weights;
  report.calibration_samples = calib.size();
  report.eval_samples = eval.size();
  report.fp32_serialized_bytes = in.fp32_serialized_bytes;
  report.fp32_parameter_bytes = in.fp32_runner->parameter_bytes();

  std::unique_ptr<Runner> runner;
  EvalMetrics metrics;
  if (options.mode == QuantMode::kStatic) {
    StaticInputs s{in.fp32_path, in.signature, in.fp32_runner, calib, eval};
    auto out = QuantizeStatic(
        s, options, output_path,
        [&](const std::string& stage, int64_t done, int64_t total) {
          if (progress) progress({stage, done, total});
        },
        cancel, &report);
    if (!out.ok()) return out.status();
    runner = std::move(out->runner);
    metrics = out->metrics;
  } else {
    const bool weight_only = options.mode == QuantMode::kInt8Weight ||
                             options.mode == QuantMode::kInt4Weight;
    // Only INT4's activation-aware scaling reads the calibration set.
    const bool calibrated =
        options.mode == QuantMode::kInt4Weight && options.activation_aware;
    if (!calibrated) report.calibration_samples = 0;
    if (progress) progress({"converting", 0, 0});
    auto q =
        weight_only
            ? ConvertWeightOnly(in.fp32_path, options, calib, output_path)
        : options.mode == QuantMode::kDynamic
            ? ConvertDynamic(in.fp32_path, in.signature, options, output_path)
            : ConvertWithoutCalibration(in.fp32_path, in.signature, options,
                                        output_path);
    if (!q.ok()) return q.status();
    report.layers = q->layers;
    report.kernel_path = q->kernel_path;
    report.linear_kernels = q->linear_kernels;
    report.int8_parameter_bytes = q->parameter_bytes;
    report.fp32_modules = options.fp32_modules;
    RunnerOptions int8_options;
    int8_options.optimize = false;
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
    report.criterion_met = CriterionMet(options, metrics);
  }
  report.top1_agreement = metrics.agreement;
  report.cosine_mean = metrics.cosine;
  report.max_abs_error = metrics.max_abs;
  report.mean_abs_error = metrics.mean_abs;
  report.fp32_accuracy = metrics.fp32_acc;
  report.int8_accuracy = metrics.int8_acc;
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
