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
#define TWINSERVE_LINEAR_KERNELS(ns)                                           \
  namespace ns {                                                               \
  /* x16, s16: as for Int4Weight below (paths may use either form). */         \
  void Int8Weight(const Int8WeightView& w, const float* xp,                    \
                  const int16_t* x16, const float* s16, int64_t m,             \
                  const float* bias, float* y, int64_t n0, int64_t n1);        \
  /* xsum: [m, k_padded / group], sums of xp per group; x16: xp as int16,      \
     xp ~= s16 * x16 per row (SIMD paths use it: 16-bit products are           \
     cheaper than converting every nibble to float). */                        \
  void Int4Weight(const Int4WeightView& w, const float* xp, const float* xsum, \
                  const int16_t* x16, const float* s16, int64_t m,             \
                  const float* bias, float* y, int64_t n0, int64_t n1);        \
  /* xq: [m, k_padded] in [0, 127]; x = sx * (xq - zx). */                     \
  void Int8Dynamic(const Int8WeightView& w, const uint8_t* xq,                 \
                   const float* sx, const int32_t* zx, int64_t m,              \
                   const float* bias, float* y, int64_t n0, int64_t n1);       \
  }

TWINSERVE_LINEAR_KERNELS(scalar)
TWINSERVE_LINEAR_KERNELS(avx2)
TWINSERVE_LINEAR_KERNELS(avx512)

#undef TWINSERVE_LINEAR_KERNELS

// Dequantization for FP32 GEMMs (scalar in packed_linear.cc, AVX2 beside
// the AVX2 kernels; AVX-512 machines use the AVX2 one: it is store-bound).
#define TWINSERVE_DEQUANTIZE(ns)                                       \
  namespace ns {                                                       \
  void DequantizeInt8(const Int8WeightView& w, int64_t c0, int64_t c1, \
                      float* out);                                     \
  void DequantizeInt4(const Int4WeightView& w, int64_t c0, int64_t c1, \
                      float* out);                                     \
  }
TWINSERVE_DEQUANTIZE(scalar)
TWINSERVE_DEQUANTIZE(avx2)
#undef TWINSERVE_DEQUANTIZE

// The row and channel loops every SIMD path shares, around its blocks:
// `Blocks` has `template <int C> static` Int8Weight(w, xr, sr, c, out),
// Int4Weight(w, x16r, s16r, xsumr, c, out) and Int8Dynamic(w, xqr, c, out),
// each computing channels [c, c + C) of one input row into out[0..C).
// Instantiated in each SIMD file with its own Blocks (and its flags).
template <typename T, typename Block4, typename Block1, typename Finish>
inline void ForChannels(int64_t n0, int64_t n1, Block4 block4, Block1 block1,
                        Finish finish) {
  T out[4];
  int64_t c = n0;
  for (; c + 4 <= n1; c += 4) {
    block4(c, out);
    for (int i = 0; i < 4; ++i) finish(c + i, out[i]);
  }
  for (; c < n1; ++c) {
    block1(c, out);
    finish(c, out[0]);
  }
}

// Rows [0, m) by channels [n0, n1): with several rows, channels go in tiles
// that stay in cache while every row passes over them (64 channels of 4,096
// int8 inputs: 256 KB, within L2), so the weights come from memory once
// per call instead of once per row.
inline constexpr int64_t kChannelTile = 64;
template <typename F>
inline void ForRowsAndTiles(int64_t m, int64_t n0, int64_t n1, F f) {
  if (m == 1) return f(0, n0, n1);
  for (int64_t t = n0; t < n1; t += kChannelTile) {
    const int64_t t1 = t + kChannelTile < n1 ? t + kChannelTile : n1;
    for (int64_t r = 0; r < m; ++r) f(r, t, t1);
  }
}

// x: [m, k_padded] as float or int16; the real inputs are row_scale[r] * x
// (row_scale null: 1). Blocks::Int8Weight(w, xr, sr, c, out) scales by sr;
// the channel scales are applied here.
template <typename Blocks, typename X>
void Int8WeightRows(const Int8WeightView& w, const X* x, const float* row_scale,
                    int64_t m, const float* bias, float* y, int64_t n0,
                    int64_t n1) {
  ForRowsAndTiles(m, n0, n1, [&](int64_t r, int64_t c0, int64_t c1) {
    const X* xr = x + r * w.k_padded;
    const float sr = row_scale != nullptr ? row_scale[r] : 1.0f;
    float* yr = y + r * w.n;
    ForChannels<float>(
        c0, c1,
        [&](int64_t c, float* o) {
          Blocks::template Int8Weight<4>(w, xr, sr, c, o);
        },
        [&](int64_t c, float* o) {
          Blocks::template Int8Weight<1>(w, xr, sr, c, o);
        },
        [&](int64_t c, float v) {
          yr[c] = v * w.scale[c] + (bias ? bias[c] : 0.0f);
        });
  });
}

template <typename Blocks>
void Int4WeightRows(const Int4WeightView& w, const float* xsum,
                    const int16_t* x16, const float* s16, int64_t m,
                    const float* bias, float* y, int64_t n0, int64_t n1) {
  const int64_t groups = w.k_padded / w.group;
  ForRowsAndTiles(m, n0, n1, [&](int64_t r, int64_t c0, int64_t c1) {
    const int16_t* xr = x16 + r * w.k_padded;
    const float* xs = xsum + r * groups;
    float* yr = y + r * w.n;
    ForChannels<float>(
        c0, c1,
        [&](int64_t c, float* o) {
          Blocks::template Int4Weight<4>(w, xr, s16[r], xs, c, o);
        },
        [&](int64_t c, float* o) {
          Blocks::template Int4Weight<1>(w, xr, s16[r], xs, c, o);
        },
        [&](int64_t c, float v) { yr[c] = v + (bias ? bias[c] : 0.0f); });
  });
}

template <typename Blocks>
void Int8DynamicRows(const Int8WeightView& w, const uint8_t* xq,
                     const float* sx, const int32_t* zx, int64_t m,
                     const float* bias, float* y, int64_t n0, int64_t n1) {
  ForRowsAndTiles(m, n0, n1, [&](int64_t r, int64_t c0, int64_t c1) {
    const uint8_t* xr = xq + r * w.k_padded;
    float* yr = y + r * w.n;
    ForChannels<int32_t>(
        c0, c1,
        [&](int64_t c, int32_t* o) {
          Blocks::template Int8Dynamic<4>(w, xr, c, o);
        },
        [&](int64_t c, int32_t* o) {
          Blocks::template Int8Dynamic<1>(w, xr, c, o);
        },
        [&](int64_t c, int32_t dot) {
          dot -= zx[r] * w.row_sum[c];
          yr[c] = sx[r] * w.scale[c] * static_cast<float>(dot) +
                  (bias ? bias[c] : 0.0f);
        });
  });
}

}  // namespace linear_internal
}  // namespace twinserve

#endif  // TWINSERVE_KERNELS_PACKED_LINEAR_INTERNAL_H_
