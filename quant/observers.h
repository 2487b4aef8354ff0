// Observer modules for LibTorch's graph-mode quantization passes, built in
// C++ as TorchScript (no Python). Activation observers record min/max
// (phase 0) and a histogram over that range (phase 1), then choose their
// range with kernels/histogram.h; in phase 2 they measure the SQNR their own
// quantization costs. Weight observers are min/max, per channel or per
// tensor, symmetric int8 (what oneDNN wants).
#ifndef TWINSERVE_QUANT_OBSERVERS_H_
#define TWINSERVE_QUANT_OBSERVERS_H_

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/passes/quantization/insert_observers.h>

#include <string>
#include <vector>

#include "kernels/histogram.h"

namespace twinserve {

struct ObserverOptions {
  RangeMethod method = RangeMethod::kMinMax;
  double percentile = 99.99;
  bool per_channel_weights = true;
  int histogram_bins = 2048;
};

// (activation observer, weight observer) for InsertObservers.
torch::jit::QConfig MakeQConfig(const ObserverOptions& options);
// For dynamic quantization: activations get a placeholder (their qparams
// are chosen per batch at run time), weights the usual weight observer.
torch::jit::QConfig MakeDynamicQConfig(const ObserverOptions& options);

// One observer inside a prepared module, with a readable name for what it
// observes ("block1.conv1 output", "fc.weight").
struct ObserverRef {
  torch::jit::Module module;
  std::string target;
  bool is_weight = false;
};

// Every observer in `prepared` (after InsertObservers), in graph order.
std::vector<ObserverRef> FindObservers(const torch::jit::Module& prepared);

// Phases: 0 min/max, 1 histogram, 2 measure SQNR (after FreezeQParams),
// 3 pass through.
void SetPhase(const std::vector<ObserverRef>& observers, int64_t phase);
// Whether the method needs the histogram pass at all.
bool NeedsHistogram(const ObserverOptions& options);
// Computes each observer's qparams once and stores them for phase 2.
void FreezeQParams(const std::vector<ObserverRef>& observers);
// The activation range method observers choose with from now on.
void SetMethod(const std::vector<ObserverRef>& observers, RangeMethod method,
               double percentile);
// Copies what activation observer `from` recorded (range, histogram) into
// `to`, an observer of the same tensor in another prepared module.
void CopyActivationState(const ObserverRef& from, const ObserverRef& to);
// SQNR in dB measured during phase 2 (+inf when the noise is zero).
double MeasuredSqnrDb(const ObserverRef& observer);

// Parameter bytes of `prepared` once quantized: weights seen by a weight
// observer become int8 plus a float scale and int zero point per channel;
// the rest (biases, FP32 layers) stay as they are. (A finalized module keeps
// packed weights as graph constants LibTorch cannot count.)
uint64_t QuantizedParameterBytes(const torch::jit::Module& prepared,
                                 const std::vector<ObserverRef>& observers);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_OBSERVERS_H_
