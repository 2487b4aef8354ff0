// Calibrator: calibrate once, convert many times. A static INT8 recipe is
// (equalize or not) x (activation range method) x (layers kept in FP32);
// the search tries several and the fallback many. Calibration is the
// expensive part (every calibration sample through the observed model,
// twice for histogram methods), so it runs once per prepared FP32 module
// and every conversion reuses it: a trial inserts observers for its own
// layer set, copies the calibrated activation state into them, chooses
// ranges with its method, and converts. A trial then costs a conversion
// and an evaluation.
//
// Includes LibTorch: for quant/*.cc only.
#ifndef TWINSERVE_QUANT_CALIBRATOR_H_
#define TWINSERVE_QUANT_CALIBRATOR_H_

#include <torch/csrc/jit/api/module.h>

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "quant/equalization.h"
#include "quant/evaluator.h"
#include "quant/layer_graph.h"
#include "quant/layer_stats.h"
#include "quant/observers.h"
#include "quant/quantize_options.h"
#include "quant/report.h"

namespace twinserve {

struct PrepareOptions {
  bool equalize = true;
  double smooth_alpha = 0.5;  // <= 0: no smoothing
  bool histograms = true;     // false: min/max only (method minmax)
  bool per_channel_weights = true;
  int batch_size = 32;
  int64_t stats_samples = 128;  // layer input statistics from this many
};

using ProgressFn =
    std::function<void(const std::string& stage, int64_t done, int64_t total)>;

// A folded (and maybe equalized and smoothed) FP32 module, calibrated.
struct Calibrated {
  torch::jit::Module base;      // FP32, batch norms folded, rescaled
  torch::jit::Module observed;  // base with every layer observed
  std::vector<ObserverRef> observers;
  LayerGraph graph;                            // of base
  std::map<std::string, ChannelStats> inputs;  // of base's layers
  RescaleResult rescaling;  // what equalization and smoothing did
  bool equalized = false;
  bool histograms = false;
  // The samples calibrated on: a trial that keeps layers in FP32 may
  // observe tensors the full calibration did not (an add no longer fused
  // with the convolution before it) and calibrates those on them.
  SampleRange calib;
  int batch_size = 32;
};

// Loads `fp32_path`, folds batch norms, equalizes and smooths as asked,
// measures layer inputs, inserts observers and runs `calib` through them.
// INVALID_ARGUMENT naming the stage LibTorch refused; CANCELLED.
absl::StatusOr<Calibrated> Calibrate(const std::string& fp32_path,
                                     const PrepareOptions& options,
                                     const SampleRange& calib,
                                     const ProgressFn& progress,
                                     const std::atomic<bool>* cancel);

struct Trial {
  RangeMethod method = RangeMethod::kMinMax;
  double percentile = 99.99;
  bool bias_correction = true;
  std::set<std::string> fp32_modules;  // layers (module paths) kept FP32
  bool per_channel_weights = true;
};

struct Converted {
  torch::jit::Module module;        // finalized INT8 module
  std::vector<LayerReport> layers;  // SQNR when `sqnr` was asked
  uint64_t parameter_bytes = 0;
  int bias_corrected = 0;
  std::vector<std::string> notes;  // bias-correction skips
};

// Converts `c` with `trial`, reusing its calibration (and calibrating only
// the tensors this trial observes that the full calibration did not). With
// `sqnr`, runs those samples through the trial's observers first to measure
// each tensor's SQNR (for the report).
absl::StatusOr<Converted> Convert(const Calibrated& c, const Trial& trial,
                                  const SampleRange* sqnr);

// Batches of `s` as forward arguments.
absl::StatusOr<std::vector<c10::IValue>> Batch(const SampleRange& s,
                                               int64_t begin, int64_t end);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_CALIBRATOR_H_
