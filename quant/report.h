// QuantizationReport: what a quantization job measured about the variant it
// made (per-layer SQNR, agreement with FP32, accuracy, sizes, latencies),
// stored with the variant as JSON and returned by GetQuantizationReport.
// LibTorch-free.
#ifndef TWINSERVE_QUANT_REPORT_H_
#define TWINSERVE_QUANT_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace twinserve {

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

  // An infinite SQNR (no noise) is stored as 999 dB: JSON has no infinity.
  std::string ToJson() const;
  // DATA_LOSS for text ToJson did not write.
  static absl::StatusOr<QuantizationReport> FromJson(const std::string& json);
};

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_REPORT_H_
