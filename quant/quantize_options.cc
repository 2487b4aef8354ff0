#include "quant/quantize_options.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace twinserve {

const char* QuantModeName(QuantMode mode) {
  switch (mode) {
    case QuantMode::kStatic:
      return "static";
    case QuantMode::kDynamic:
      return "dynamic";
    case QuantMode::kFp16:
      return "fp16";
    case QuantMode::kBf16:
      return "bf16";
    case QuantMode::kInt8Weight:
      return "int8-weight";
    case QuantMode::kInt4Weight:
      return "int4-weight";
  }
  return "unknown";
}

absl::StatusOr<QuantMode> ParseQuantMode(const std::string& name) {
  for (QuantMode m :
       {QuantMode::kStatic, QuantMode::kDynamic, QuantMode::kFp16,
        QuantMode::kBf16, QuantMode::kInt8Weight, QuantMode::kInt4Weight}) {
    if (name == QuantModeName(m)) return m;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown quantization mode '", name,
      "' (static, dynamic, int8-weight, int4-weight, fp16, bf16)"));
}

const char* DefaultVariantName(QuantMode mode) {
  switch (mode) {
    case QuantMode::kStatic:
      return "int8";
    case QuantMode::kDynamic:
      return "int8-dynamic";
    case QuantMode::kFp16:
      return "fp16";
    case QuantMode::kBf16:
      return "bf16";
    case QuantMode::kInt8Weight:
      return "int8-weight";
    case QuantMode::kInt4Weight:
      return "int4-weight";
  }
  return "int8";
}

const char* RangeMethodName(RangeMethod method) {
  switch (method) {
    case RangeMethod::kMinMax:
      return "minmax";
    case RangeMethod::kPercentile:
      return "percentile";
    case RangeMethod::kEntropy:
      return "entropy";
    case RangeMethod::kMse:
      return "mse";
  }
  return "unknown";
}

absl::StatusOr<RangeMethod> ParseRangeMethod(const std::string& name) {
  for (RangeMethod m : {RangeMethod::kMinMax, RangeMethod::kPercentile,
                        RangeMethod::kEntropy, RangeMethod::kMse}) {
    if (name == RangeMethodName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown calibration method '", name,
                   "' (minmax, percentile, entropy, mse)"));
}

absl::Status ValidateQuantizeOptions(const QuantizeOptions& o) {
  if (o.mode == QuantMode::kFp16) {
    return absl::UnimplementedError(
        "mode fp16 cannot run here: LibTorch 1.13 has no Half kernels for "
        "convolution or matrix multiply on CPU; use bf16 (half the weight "
        "bytes, computed in bfloat16) or int8");
  }
  // `!(x >= lo && x <= hi)` is true for NaN too.
  if (!(o.percentile > 0 && o.percentile <= 100)) {
    return absl::InvalidArgumentError("percentile must be in (0, 100]");
  }
  if (!(o.smooth_alpha <= 1) || !std::isfinite(o.smooth_alpha)) {
    return absl::InvalidArgumentError(
        "smooth_alpha must be at most 1 (0 or less turns smoothing off)");
  }
  auto loss = [](const char* name, double v) {
    if (std::isnan(v) || v > 100 || std::isinf(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          name,
          " must be in [0, 100] (percentage points), or negative for "
          "no limit"));
    }
    return absl::OkStatus();
  };
  if (absl::Status st = loss("max_agreement_loss", o.max_agreement_loss);
      !st.ok()) {
    return st;
  }
  if (absl::Status st = loss("max_accuracy_loss", o.max_accuracy_loss);
      !st.ok()) {
    return st;
  }
  if (o.max_calibration_samples <= 0) {
    return absl::InvalidArgumentError("max_samples must be positive");
  }
  if (o.batch_size <= 0) {
    return absl::InvalidArgumentError("batch_size must be positive");
  }
  if (!(o.holdout_fraction >= 0 && o.holdout_fraction < 1)) {
    return absl::InvalidArgumentError("holdout_fraction must be in [0, 1)");
  }
  if (o.group_size != 32 && o.group_size != 64 && o.group_size != 128) {
    return absl::InvalidArgumentError("group_size must be 32, 64 or 128");
  }
  if (o.max_trials < 0 || o.max_trials > 1000) {
    return absl::InvalidArgumentError("max_trials must be in [0, 1000]");
  }
  if (!(o.time_limit_seconds > 0 && o.time_limit_seconds <= 86400)) {
    return absl::InvalidArgumentError(
        "time_limit_seconds must be in (0, 86400]");
  }
  return absl::OkStatus();
}

}  // namespace twinserve
