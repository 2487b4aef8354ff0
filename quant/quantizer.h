// Quantizer: post-training static INT8 quantization of a scripted FP32
// TorchScript model from a calibration set, in C++ through LibTorch's
// graph-mode passes (FoldConvBatchNorm -> InsertObservers -> calibrate ->
// InsertQuantDeQuant -> Finalize), with an evaluation of the result against
// the served FP32 variant and an optional automatic FP32 fallback of the
// most sensitive layers.
//
// LibTorch-free header: the server's job machinery includes it.
#ifndef TWINSERVE_QUANT_QUANTIZER_H_
#define TWINSERVE_QUANT_QUANTIZER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/histogram.h"
#include "quant/calibration_set.h"
#include "server/core/runner.h"

namespace twinserve {

// What the new variant is made of.
enum class QuantMode {
  kStatic,   // INT8 weights and activations, calibrated (conv nets)
  kDynamic,  // INT8 weights; activations quantized per batch at run time
             // (Linear/LSTM models); needs no calibration, only evaluation
  kFp16,     // half-precision weights and compute
  kBf16,     // bfloat16 weights and compute
};
const char* QuantModeName(QuantMode mode);
absl::StatusOr<QuantMode> ParseQuantMode(const std::string& name);

struct QuantizeOptions {
  QuantMode mode = QuantMode::kStatic;
  // How activation ranges are chosen. Default min/max: as accurate as the
  // searches on the bundled model and robust where they are not (MSE
  // wrecked a random-weight ResNet-18 whose activations have extreme
  // outliers; see README, Quantization).
  RangeMethod method = RangeMethod::kMinMax;
  double percentile = 99.99;  // for kPercentile
  // Symmetric int8 weights per output channel (default) or per tensor.
  bool per_channel_weights = true;
  // Module paths kept in FP32 ("block3.conv2"): mixed precision.
  std::vector<std::string> fp32_modules;
  // At most this many calibration samples are used (default 512).
  int64_t max_calibration_samples = 512;
  int batch_size = 32;
  // Without an evaluation set, this share of the calibration set is held
  // out for evaluation (and not used for calibration).
  double holdout_fraction = 0.2;
  int64_t max_eval_samples = 10000;
  // Accuracy criterion: allowed loss of top-1 agreement with FP32 (points
  // of percent, e.g. 1.0 = 99% agreement) and, with labels, of labelled
  // top-1 accuracy. Negative disables a check.
  double max_agreement_loss = 2.0;
  double max_accuracy_loss = 1.0;
  // When the criterion fails, return the most sensitive layers to FP32 one
  // at a time until it holds, within these budgets.
  bool auto_fallback = false;
  int max_trials = 8;
  double time_limit_seconds = 600;
  // Latency measurement in the job (median of this many runs).
  int latency_runs = 15;
};

struct LayerReport {
  std::string name;  // "block1.conv1 output", "fc.weight"
  bool is_weight = false;
  double sqnr_db = 0;  // of this tensor's own quantization, eval set
  bool quantized = true;
};

struct QuantizationReport {
  std::string mode = "static";
  std::string method;
  double percentile = 0;
  bool per_channel_weights = true;
  int64_t calibration_samples = 0;
  int64_t eval_samples = 0;
  std::vector<LayerReport> layers;
  std::vector<std::string> fp32_modules;  // kept in FP32 (asked or fallback)
  std::vector<std::string> fallback_log;  // why each fallback happened
  int trials = 1;
  bool criterion_met = true;
  // Whole model on the evaluation set (first output).
  double top1_agreement = 0;  // percent
  double cosine_mean = 0;
  double max_abs_error = 0;
  double mean_abs_error = 0;
  double fp32_accuracy = -1;  // percent, -1 without labels
  double int8_accuracy = -1;
  uint64_t fp32_serialized_bytes = 0;
  uint64_t int8_serialized_bytes = 0;
  uint64_t fp32_parameter_bytes = 0;
  uint64_t int8_parameter_bytes = 0;
  double fp32_latency_ms_b1 = 0, int8_latency_ms_b1 = 0;
  double fp32_latency_ms_b32 = 0, int8_latency_ms_b32 = 0;
  double duration_seconds = 0;

  std::string ToJson() const;
  static absl::StatusOr<QuantizationReport> FromJson(const std::string& json);
};

struct QuantizeProgress {
  std::string stage;  // "calibrating", "converting", "evaluating", ...
  int64_t done = 0;
  int64_t total = 0;
};

struct QuantizeInputs {
  std::string fp32_path;  // the scripted (not frozen) FP32 TorchScript
  Signature signature;
  const CalibrationSet* calibration = nullptr;
  const CalibrationSet* evaluation = nullptr;  // optional
  const Runner* fp32_runner = nullptr;         // the served FP32 variant
  uint64_t fp32_serialized_bytes = 0;
};

struct QuantizeResult {
  std::unique_ptr<Runner> runner;  // the INT8 variant, loaded from output_path
  QuantizationReport report;
};

// Writes the INT8 TorchScript module to `output_path` and returns it loaded,
// with its report. Errors: FAILED_PRECONDITION (empty set), INVALID_ARGUMENT
// naming the op or layer the passes refused, CANCELLED when *cancel turns
// true (checked between batches), FAILED_PRECONDITION when the criterion
// fails without auto_fallback or the budget runs out (the report is in the
// message).
absl::StatusOr<QuantizeResult> QuantizeModel(
    const QuantizeInputs& inputs, const QuantizeOptions& options,
    const std::string& output_path,
    const std::function<void(const QuantizeProgress&)>& progress,
    const std::atomic<bool>* cancel);

const char* RangeMethodName(RangeMethod method);
absl::StatusOr<RangeMethod> ParseRangeMethod(const std::string& name);

// Selects oneDNN for quantized kernels (Debian's LibTorch has no fbgemm;
// qnnpack is several times slower on x86). Call once at startup.
void UseOneDnnQuantizedEngine();

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_QUANTIZER_H_
