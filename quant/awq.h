// Activation-aware INT4 packing (as AWQ does, Lin et al. 2023): input j of a
// Linear layer has its weights multiplied by s_j = mean|x_j|^alpha before
// quantization and x_j divided by it at run time, which leaves the FP32
// function unchanged and gives the inputs that carry the most signal the
// finest steps. Alpha is searched in [0, 1] (steps of 0.1) to minimise
// sum_j E[x_j^2] * |W_j - Q(W_j)|^2, the output error if inputs were
// uncorrelated; alpha 0 is round to nearest, so the search never does worse
// by that measure.
//
// Includes LibTorch: for quant/*.cc only.
#ifndef TWINSERVE_QUANT_AWQ_H_
#define TWINSERVE_QUANT_AWQ_H_

#include <ATen/ATen.h>

#include <cstdint>

#include "kernels/packed_linear.h"
#include "quant/layer_stats.h"

namespace twinserve {

struct Int4Choice {
  PackedInt4 packed;
  double alpha = -1;        // -1: not searched (round to nearest)
  double error_ratio = -1;  // weighted error over round to nearest's
};

// `w` [n, k] contiguous FP32. Without `stats` (or with stats of another
// width): round to nearest.
Int4Choice PackInt4ActivationAware(const at::Tensor& w, int64_t group,
                                   const ChannelStats* stats);

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_AWQ_H_
