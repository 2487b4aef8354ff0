// Static INT8 recipe: calibrates once (quant/calibrator.h), then searches
// the recipe (activation range method, equalization) on a screening subset
// of the evaluation set, and when the chosen recipe still misses the
// criterion and auto-fallback is on, ranks layers by what keeping each one
// alone in FP32 does to the model's output (not by its own SQNR, which
// outlier channels fool) and returns them to FP32 in that order. Every
// trial reuses the calibration: a trial costs a conversion and an
// evaluation.
//
// LibTorch-free header.
#ifndef TWINSERVE_QUANT_STATIC_RECIPE_H_
#define TWINSERVE_QUANT_STATIC_RECIPE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "quant/evaluator.h"
#include "quant/quantize_options.h"
#include "quant/report.h"
#include "server/runtime/runner.h"

namespace twinserve {

struct StaticInputs {
  std::string fp32_path;
  Signature signature;
  const Runner* fp32_runner = nullptr;
  SampleRange calib;
  SampleRange eval;
};

struct StaticOutcome {
  std::unique_ptr<Runner> runner;  // loaded from the output path
  EvalMetrics metrics;             // on the whole evaluation range
};

// Writes the chosen INT8 module to `output_path` and fills `report`'s
// recipe fields (method, equalized, bias_corrected_layers, smooth_alpha,
// rescaling, candidates, sensitivity, layers, fp32_modules, fallback_log,
// trials, criterion_met). Errors: INVALID_ARGUMENT naming the stage LibTorch
// refused; CANCELLED; INTERNAL when a converted module does not load.
absl::StatusOr<StaticOutcome> QuantizeStatic(
    const StaticInputs& in, const QuantizeOptions& options,
    const std::string& output_path,
    const std::function<void(const std::string& stage, int64_t done,
                             int64_t total)>& progress,
    const std::atomic<bool>* cancel, QuantizationReport* report);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_STATIC_RECIPE_H_
