// Evaluator: how a derived variant compares with FP32 on held-out samples,
// with the one definition of agreement and cosine that live shadow traffic
// also uses (kernels/drift.h), plus the latency measurement of the report.
// LibTorch-free: it runs models through Runner.
#ifndef TWINSERVE_QUANT_EVALUATOR_H_
#define TWINSERVE_QUANT_EVALUATOR_H_

#include <atomic>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "quant/calibration_set.h"
#include "quant/quantize_options.h"
#include "server/runtime/runner.h"

namespace twinserve {

// Samples [begin, end) of one set.
struct SampleRange {
  const CalibrationSet* set = nullptr;
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

struct EvalMetrics {
  double agreement = 0;  // top-1 agreement, percent (100 without classes)
  double cosine = 0;     // mean over samples
  double max_abs = 0;
  double mean_abs = 0;   // over every output element
  double fp32_acc = -1;  // labelled top-1 accuracy, percent; -1 unlabelled
  double int8_acc = -1;
};

// Runs `baseline` and `candidate` on `eval` in batches of `batch` and
// compares their first outputs. INVALID_ARGUMENT unless the first output is
// FP32; CANCELLED when *cancel turns true between batches; a runner's error.
absl::StatusOr<EvalMetrics> Evaluate(const Runner& baseline,
                                     const Runner& candidate,
                                     const SampleRange& eval, int batch,
                                     const std::atomic<bool>* cancel);

// Whether `m` is within the options' allowed agreement and accuracy loss.
bool CriterionMet(const QuantizeOptions& options, const EvalMetrics& m);

// `batch` rows made of the first samples of `s`, repeated as needed.
std::vector<HostTensor> LatencyInput(const SampleRange& s, int64_t batch);
// Median wall time of `runs` runs on `inputs`, in milliseconds, after one
// warm-up run.
double MedianLatencyMs(const Runner& runner,
                       const std::vector<HostTensor>& inputs, int runs);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_EVALUATOR_H_
