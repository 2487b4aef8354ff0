// Conversions that need no calibration: dynamic INT8 (weights quantized
// ahead, activations per batch at run time) and reduced precision (BF16
// weights and compute, inputs cast down and outputs back). LibTorch-free
// header.
#ifndef TWINSERVE_QUANT_CONVERTERS_H_
#define TWINSERVE_QUANT_CONVERTERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "quant/quantize_options.h"
#include "quant/report.h"
#include "server/common/signature.h"

namespace twinserve {

// What one conversion made, for the report.
struct Conversion {
  std::vector<LayerReport> layers;
  uint64_t parameter_bytes = 0;
  // Weight-only and dynamic modes: twinserve's kernel path and each Linear
  // layer's kernel.
  std::string kernel_path;
  std::vector<LinearKernelReport> linear_kernels;
};

// Converts the scripted FP32 model at `fp32_path` as `options.mode` says
// (kDynamic, kFp16 or kBf16) and saves it to `output_path`.
// INVALID_ARGUMENT when the model has nothing to convert (no Linear for
// dynamic) or LibTorch refuses, naming the stage.
absl::StatusOr<Conversion> ConvertWithoutCalibration(
    const std::string& fp32_path, const Signature& signature,
    const QuantizeOptions& options, const std::string& output_path);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_CONVERTERS_H_
