// Conversions that put Linear layers on twinserve's kernels.
//
// Weight-only (modes int8-weight and int4-weight): every Linear
// layer of the frozen FP32 model becomes a call to twinserve's packed
// kernels (twinserve.linear_int8_weight / linear_int4_weight, server/
// runtime/linear_ops.h) with its weights packed as tensor constants; other
// layers stay FP32. The result is an ordinary TorchScript file.
//
// INT4 with a calibration set scales each layer's inputs before quantizing
// (activation-aware, quant/awq.h).
//
// Dynamic (mode dynamic): each Linear layer runs LibTorch's dynamic INT8
// kernel or twinserve's (twinserve.linear_int8_dynamic), whichever is faster
// for its shape on this machine, timed at batch 1 and 32 during the
// conversion; the report lists both timings and the choice.
//
// Each packed layer's crossover from the GEMV kernel to a dequantized FP32
// GEMM is measured here, on this machine, and stored in the call
// (quant/linear_rewrite.h does the graph work).
//
// LibTorch-free header.
#ifndef TWINSERVE_QUANT_LINEAR_CONVERT_H_
#define TWINSERVE_QUANT_LINEAR_CONVERT_H_

#include <string>

#include "absl/status/statusor.h"
#include "quant/converters.h"
#include "quant/evaluator.h"
#include "quant/quantize_options.h"

namespace twinserve {

// Converts the scripted FP32 model at `fp32_path` as options.mode
// (kInt8Weight or kInt4Weight) says and saves it to `output_path`.
// `calibration` may be empty (INT4 then rounds to nearest). Layers named in
// options.fp32_modules stay FP32. INVALID_ARGUMENT when the model has no
// Linear layer with constant weights, or LibTorch refuses, naming the stage.
absl::StatusOr<Conversion> ConvertWeightOnly(const std::string& fp32_path,
                                             const QuantizeOptions& options,
                                             const SampleRange& calibration,
                                             const std::string& output_path);

// Dynamic INT8 with the per-layer kernel choice above; options.fp32_modules
// stay FP32. Errors as ConvertWithoutCalibration's.
absl::StatusOr<Conversion> ConvertDynamic(const std::string& fp32_path,
                                          const Signature& signature,
                                          const QuantizeOptions& options,
                                          const std::string& output_path);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_LINEAR_CONVERT_H_
