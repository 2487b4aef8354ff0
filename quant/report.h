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

// One recipe the search tried ("entropy, equalized"), on the screening
// subset of the evaluation set.
struct CandidateReport {
  std::string recipe;
  double top1_agreement = 0;
  double accuracy = -1;  // -1 without labels
  double latency_ms_b1 = 0;
  bool criterion_met = false;
  bool chosen = false;
};

// Why a layer is (or is not) sensitive: how unevenly its input channels
// range, and, once the fallback ranked layers, what quantizing it alone
// (the rest in FP32) does to the model's output.
struct LayerSensitivity {
  std::string layer;                      // module path
  double input_channel_spread = 0;        // largest channel range / median
  double agreement_quantized_alone = -1;  // -1: not measured
  double mean_abs_error_quantized_alone = -1;
};

// Which kernel runs one Linear layer of a weight-only or dynamic variant,
// and why.
struct LinearKernelReport {
  std::string layer;  // module path
  int64_t out_features = 0, in_features = 0;
  // "twinserve int4-weight g128", "twinserve int8-dynamic", "libtorch
  // int8-dynamic", "fp32 (asked)".
  std::string kernel;
  // int4 with a calibration set: the activation-aware exponent chosen
  // (0 = round to nearest) and the activation-weighted weight error it
  // leaves, relative to round to nearest; -1 when not searched.
  double awq_alpha = -1;
  double awq_error_ratio = -1;
  // From this many rows the layer runs as a dequantized FP32 GEMM
  // (0: never), measured at conversion.
  int64_t gemm_from_rows = 0;
  // Dynamic mode: both kernels at batch 1, medians, milliseconds.
  double twinserve_ms_b1 = -1, libtorch_ms_b1 = -1;
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
  // How the static recipe was chosen and what it did.
  bool searched = false;  // method "auto"
  bool equalized = false;
  int bias_corrected_layers = 0;
  double smooth_alpha = 0;             // 0: no smoothing
  std::vector<std::string> rescaling;  // pairs equalized / smoothed / skipped
  std::vector<CandidateReport> candidates;
  std::vector<LayerSensitivity> sensitivity;
  // Weight-only and dynamic modes: the SIMD path twinserve's kernels took
  // ("avx2", "avx512_vnni", "scalar") and each Linear layer's kernel.
  std::string kernel_path;
  std::vector<LinearKernelReport> linear_kernels;

  // An infinite SQNR (no noise) is stored as 999 dB: JSON has no infinity.
  std::string ToJson() const;
  // DATA_LOSS for text ToJson did not write.
  static absl::StatusOr<QuantizationReport> FromJson(const std::string& json);
};

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_REPORT_H_
