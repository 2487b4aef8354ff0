// Histogram collection and clipping-range search for activation observers:
// the numeric hot paths of calibration. Plain C++ on float arrays; the
// observers reach them through the LibTorch ops in torch_ops.cc.
#ifndef TWINSERVE_KERNELS_HISTOGRAM_H_
#define TWINSERVE_KERNELS_HISTOGRAM_H_

#include <cstdint>

namespace twinserve {

// Adds `n` values into `num_bins` equal-width bins over [lo, hi]. Values
// outside the range land in the edge bins (the range comes from a min/max
// pass over the same data, so only rounding puts them there).
// REQUIRES: hi > lo, num_bins >= 1.
void AccumulateHistogram(const float* values, int64_t n, float lo, float hi,
                         double* bins, int num_bins);

// Min and max of `n` values (n >= 1).
void MinMax(const float* values, int64_t n, float* min, float* max);

enum class RangeMethod {
  kMinMax = 0,  // the observed range
  kPercentile =
      1,         // clip to the p-th percentile of |x| (param = p, e.g. 99.99)
  kEntropy = 2,  // minimize KL(P || Q), TensorRT's entropy calibrator,
                 // clipping at most 0.1% of values
  kMse = 3,      // minimize expected squared quantization error
};

struct ClipRange {
  float lo;
  float hi;
};

// The clipping range for an activation observed as a histogram over
// [lo, hi], to be quantized to `levels` steps (256 for 8 bits). Activations
// that are never negative (lo >= 0, e.g. after ReLU) are clipped one-sided,
// [0, t]; signed ones symmetrically, [-t, t] intersected with [lo, hi].
// The result always contains 0.
ClipRange ChooseClipRange(const double* bins, int num_bins, float lo, float hi,
                          RangeMethod method, double param, int levels);

// Affine uint8-style parameters for [range.lo, range.hi] over integer codes
// [qmin, qmax]: scale > 0 and zero_point in [qmin, qmax], so 0.0 is exact.
void AffineQParams(ClipRange range, int qmin, int qmax, double* scale,
                   int64_t* zero_point);

}  // namespace twinserve

#endif  // TWINSERVE_KERNELS_HISTOGRAM_H_
