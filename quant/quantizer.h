// Quantizer: post-training static INT8 quantization of a scripted FP32
// TorchScript model from a calibration set, in C++ through LibTorch's
// graph-mode passes (FoldConvBatchNorm -> InsertObservers -> calibrate ->
// InsertQuantDeQuant -> Finalize), with an evaluation of the result against
// the served FP32 variant (quant/evaluator.h) and an optional automatic FP32
// fallback of the most sensitive layers. Modes that need no calibration go
// through quant/converters.h and the same evaluation.
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
#include "quant/calibration_set.h"
#include "quant/quantize_options.h"
#include "quant/report.h"
#include "server/runtime/runner.h"

namespace twinserve {

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

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_QUANTIZER_H_
