// Drift statistics between two variants' outputs for the same request: the
// numeric core of shadow comparison. Plain C++ over float rows.
#ifndef TWINSERVE_KERNELS_DRIFT_H_
#define TWINSERVE_KERNELS_DRIFT_H_

#include <cstdint>

namespace twinserve {

struct DriftStats {
  double cosine_sum = 0;  // sum over rows of cosine similarity
  double max_abs_error = 0;
  int64_t rows = 0;
  int64_t top1_agreements = 0;
  int64_t top1_disagreements = 0;
};

// Compares `rows` rows of `cols` values (row-major). Top-1 agreement is
// counted only when cols > 1 (a classifier's scores). A row whose two
// vectors are both zero has cosine 1.
DriftStats CompareRows(const float* baseline, const float* candidate,
                       int64_t rows, int64_t cols);

}  // namespace twinserve

#endif  // TWINSERVE_KERNELS_DRIFT_H_
