// Drift statistics between two variants' outputs for the same inputs: the
// one definition of agreement and cosine that both the quantization report
// (quant/evaluator) and live shadow comparison (server/serving) use. Plain
// C++ over float rows.
#ifndef TWINSERVE_KERNELS_DRIFT_H_
#define TWINSERVE_KERNELS_DRIFT_H_

#include <cstdint>

namespace twinserve {

struct DriftStats {
  int64_t rows = 0;
  // Sum over rows of the cosine similarity of the two rows. Two zero rows
  // are identical (1); a zero row against a non-zero one shares no
  // direction (0).
  double cosine_sum = 0;
  double max_abs_error = 0;
  double abs_error_sum = 0;  // over every element compared
  int64_t elements = 0;
  // Top-1 (argmax, first index on ties) per row, counted only for rows of
  // more than one value (a classifier's scores).
  int64_t top1_agreements = 0;
  int64_t top1_disagreements = 0;

  // Adds `other`'s counts to these.
  void Merge(const DriftStats& other);
};

// Compares `rows` rows of `cols` values (row-major) of `baseline` and
// `candidate`. When not null, `top_baseline` and `top_candidate` receive
// each row's argmax (`rows` entries each), e.g. for labelled accuracy.
DriftStats CompareRows(const float* baseline, const float* candidate,
                       int64_t rows, int64_t cols,
                       int64_t* top_baseline = nullptr,
                       int64_t* top_candidate = nullptr);

}  // namespace twinserve

#endif  // TWINSERVE_KERNELS_DRIFT_H_
