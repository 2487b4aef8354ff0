#include "kernels/drift.h"

#include <algorithm>
#include <cmath>

namespace twinserve {

void DriftStats::Merge(const DriftStats& o) {
  rows += o.rows;
  cosine_sum += o.cosine_sum;
  max_abs_error = std::max(max_abs_error, o.max_abs_error);
  abs_error_sum += o.abs_error_sum;
  elements += o.elements;
  top1_agreements += o.top1_agreements;
  top1_disagreements += o.top1_disagreements;
}

DriftStats CompareRows(const float* a, const float* b, int64_t rows,
                       int64_t cols, int64_t* top_a, int64_t* top_b) {
  DriftStats s;
  s.rows = rows;
  s.elements = rows * cols;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = a + r * cols;
    const float* y = b + r * cols;
    double dot = 0, nx = 0, ny = 0, max_abs = 0, abs_sum = 0;
    int64_t top_x = 0, top_y = 0;
    for (int64_t c = 0; c < cols; ++c) {
      dot += static_cast<double>(x[c]) * y[c];
      nx += static_cast<double>(x[c]) * x[c];
      ny += static_cast<double>(y[c]) * y[c];
      const double d = std::fabs(static_cast<double>(x[c]) - y[c]);
      abs_sum += d;
      if (d > max_abs) max_abs = d;
      if (x[c] > x[top_x]) top_x = c;
      if (y[c] > y[top_y]) top_y = c;
    }
    if (nx == 0 && ny == 0) {
      s.cosine_sum += 1;
    } else if (nx > 0 && ny > 0) {
      s.cosine_sum += dot / std::sqrt(nx * ny);
    }
    s.abs_error_sum += abs_sum;
    if (max_abs > s.max_abs_error) s.max_abs_error = max_abs;
    if (cols > 1) {
      if (top_x == top_y) {
        ++s.top1_agreements;
      } else {
        ++s.top1_disagreements;
      }
    }
    if (top_a != nullptr) top_a[r] = top_x;
    if (top_b != nullptr) top_b[r] = top_y;
  }
  return s;
}

}  // namespace twinserve
