// What a quantization job is asked to make, and the domain rules about it:
// each mode's default variant name and the checks every option must pass
// (a job's options are stored as JSON, which has no NaN or infinity).
// LibTorch-free.
#ifndef TWINSERVE_QUANT_QUANTIZE_OPTIONS_H_
#define TWINSERVE_QUANT_QUANTIZE_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/histogram.h"

namespace twinserve {

// What the new variant is made of.
enum class QuantMode {
  kStatic,   // INT8 weights and activations, calibrated (conv nets)
  kDynamic,  // INT8 weights; activations quantized per batch at run time
             // (Linear/LSTM models); needs no calibration, only evaluation
  kFp16,     // half-precision weights and compute
  kBf16,     // bfloat16 weights and compute
  // Linear weights packed for twinserve's kernels (kernels/packed_linear.h),
  // activations FP32: INT8 per output channel, or INT4 per group with
  // activation-aware scaling from the calibration set. Other layers stay.
  kInt8Weight,
  kInt4Weight,
};
const char* QuantModeName(QuantMode mode);
// INVALID_ARGUMENT naming the modes for an unknown one.
absl::StatusOr<QuantMode> ParseQuantMode(const std::string& name);
// The variant a mode makes unless told otherwise ("int8", "int8-dynamic",
// "int8-weight", "int4-weight", "fp16", "bf16"), so that a model can carry
// several side by side.
const char* DefaultVariantName(QuantMode mode);

const char* RangeMethodName(RangeMethod method);
absl::StatusOr<RangeMethod> ParseRangeMethod(const std::string& name);

struct QuantizeOptions {
  QuantMode mode = QuantMode::kStatic;
  // Static mode: search the recipe (method "auto", the default): every
  // activation range method on one calibration, and without equalization
  // if none meets the criterion; the fastest variant that meets it wins.
  // false: `method` only.
  bool search = true;
  // How activation ranges are chosen when not searching. Min/max: as
  // accurate as the others on the bundled model and robust where they are
  // not (MSE wrecked a random-weight ResNet-18 whose activations have
  // extreme outliers; see README, Quantization).
  RangeMethod method = RangeMethod::kMinMax;
  // Static mode: cross-layer equalization, bias correction, and smoothing
  // of Linear inputs with this alpha (<= 0: off); see quant/equalization.h.
  bool equalize = true;
  bool bias_correction = true;
  double smooth_alpha = 0.5;
  double percentile = 99.99;  // for kPercentile, in (0, 100]
  // Symmetric int8 weights per output channel (default) or per tensor.
  bool per_channel_weights = true;
  // Module paths kept in FP32 ("block3.conv2"): mixed precision.
  std::vector<std::string> fp32_modules;
  // int4-weight: inputs per scale and zero point (32, 64 or 128; smaller is
  // more accurate and slower), and whether the calibration set chooses
  // per-input scaling (AWQ-style) rather than plain round to nearest.
  int64_t group_size = 128;
  bool activation_aware = true;
  // At most this many calibration samples are used.
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

// INVALID_ARGUMENT naming the first option out of range: percentile in
// (0, 100]; losses in [0, 100] or negative (off); max_calibration_samples
// and batch_size > 0; max_trials in [0, 1000]; time limit in (0, 86400];
// every number finite; group_size 32, 64 or 128. UNIMPLEMENTED for fp16, which
// LibTorch 1.13 cannot run on a CPU.
absl::Status ValidateQuantizeOptions(const QuantizeOptions& options);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_QUANTIZE_OPTIONS_H_
