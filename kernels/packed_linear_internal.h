// The per-path loops behind kernels/packed_linear.h, over activations the
// dispatcher has already prepared (padded to k_padded, scaled, summed or
// quantized). Not for other callers.
#ifndef TWINSERVE_KERNELS_PACKED_LINEAR_INTERNAL_H_
#define TWINSERVE_KERNELS_PACKED_LINEAR_INTERNAL_H_

#include <cstdint>

#include "kernels/packed_linear.h"

namespace twinserve {
namespace linear_internal {

// xp: [m, k_padded]; y: [m, w.n], rows [n0, n1) written.
#define TWINSERVE_LINEAR_KERNELS(ns)                                          \
  namespace ns {                                                              \
  void Int8Weight(const PackedInt8& w, const float* xp, int64_t m,            \
                  const float* bias, float* y, int64_t n0, int64_t n1);       \
  /* xsum: [m, k_padded / group], sums of xp per group; x16: xp as int16,     \
     xp ~= s16 * x16 per row (SIMD paths use it: 16-bit products are          \
     cheaper than converting every nibble to float). */                       \
  void Int4Weight(const PackedInt4& w, const float* xp, const float* xsum,    \
                  const int16_t* x16, const float* s16, int64_t m,            \
                  const float* bias, float* y, int64_t n0, int64_t n1);       \
  /* xq: [m, k_padded] in [0, 127]; x = sx * (xq - zx). */                    \
  void Int8Dynamic(const PackedInt8& w, const uint8_t* xq, const float* sx,   \
                   const int32_t* zx, int64_t m, const float* bias, float* y, \
                   int64_t n0, int64_t n1);                                   \
  }

TWINSERVE_LINEAR_KERNELS(scalar)
TWINSERVE_LINEAR_KERNELS(avx2)
TWINSERVE_LINEAR_KERNELS(avx512)

#undef TWINSERVE_LINEAR_KERNELS

}  // namespace linear_internal
}  // namespace twinserve

#endif  // TWINSERVE_KERNELS_PACKED_LINEAR_INTERNAL_H_
