// AVX-512 (F, BW, VL) + VNNI loops (built with those flags; called only
// when the CPU has them). Same structure as the AVX2 file, 16 floats per
// vector; the dynamic form uses VNNI's u8 x s8 dot products.
#include <immintrin.h>

#include "kernels/packed_linear_internal.h"

namespace twinserve {
namespace linear_internal {
namespace avx512 {
namespace {

inline __m512 LoadI8x16(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

struct Blocks {
  template <int C>
  static void Int8Weight(const Int8WeightView& w, const float* xr, float sr,
                         int64_t c, float* out) {
    const int8_t* q[C];
    __m512 a0[C], a1[C];
    for (int i = 0; i < C; ++i) {
      q[i] = w.q + (c + i) * w.k_padded;
      a0[i] = _mm512_setzero_ps();
      a1[i] = _mm512_setzero_ps();
    }
    for (int64_t j = 0; j < w.k_padded; j += 32) {
      const __m512 x0 = _mm512_loadu_ps(xr + j);
      const __m512 x1 = _mm512_loadu_ps(xr + j + 16);
      for (int i = 0; i < C; ++i) {
        a0[i] = _mm512_fmadd_ps(LoadI8x16(q[i] + j), x0, a0[i]);
        a1[i] = _mm512_fmadd_ps(LoadI8x16(q[i] + j + 16), x1, a1[i]);
      }
    }
    for (int i = 0; i < C; ++i) {
      out[i] = _mm512_reduce_add_ps(_mm512_add_ps(a0[i], a1[i])) * sr;
    }
  }

  // As the AVX2 path: nibbles times 16-bit inputs, exact per group.
  template <int C>
  static void Int4Weight(const Int4WeightView& w, const int16_t* xr, float sr,
                         const float* xs, int64_t c, float* out) {
    const int64_t groups = w.k_padded / w.group;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    const uint8_t* q[C];
    __m512 total[C];
    float corr[C];
    for (int i = 0; i < C; ++i) {
      q[i] = w.q + (c + i) * w.k_padded / 2;
      total[i] = _mm512_setzero_ps();
      corr[i] = 0;
    }
    for (int64_t g = 0; g < groups; ++g) {
      __m512i acc[C];
      for (int i = 0; i < C; ++i) acc[i] = _mm512_setzero_si512();
      for (int64_t j = g * w.group; j < (g + 1) * w.group; j += 32) {
        const __m512i x01 =
            _mm512_loadu_si512(reinterpret_cast<const void*>(xr + j));
        for (int i = 0; i < C; ++i) {
          const __m128i b =
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(q[i] + j / 2));
          const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
          const __m256i nib = _mm256_and_si256(both, low4);
          // Bytes 0..15: inputs j..j+15; bytes 16..31: inputs j+16..j+31.
          acc[i] = _mm512_add_epi32(
              acc[i], _mm512_madd_epi16(_mm512_cvtepu8_epi16(nib), x01));
        }
      }
      for (int i = 0; i < C; ++i) {
        const int64_t at = (c + i) * groups + g;
        total[i] = _mm512_fmadd_ps(_mm512_set1_ps(w.scale[at] * sr),
                                   _mm512_cvtepi32_ps(acc[i]), total[i]);
        corr[i] += w.scale[at] * w.zero[at] * xs[g];
      }
    }
    for (int i = 0; i < C; ++i)
      out[i] = _mm512_reduce_add_ps(total[i]) - corr[i];
  }

  template <int C>
  static void Int8Dynamic(const Int8WeightView& w, const uint8_t* xr, int64_t c,
                          int32_t* out) {
    const int8_t* q[C];
    __m256i acc[C];
    for (int i = 0; i < C; ++i) {
      q[i] = w.q + (c + i) * w.k_padded;
      acc[i] = _mm256_setzero_si256();
    }
    for (int64_t j = 0; j < w.k_padded; j += 32) {
      const __m256i xv =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + j));
      for (int i = 0; i < C; ++i) {
        const __m256i wv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[i] + j));
        acc[i] = _mm256_dpbusd_epi32(acc[i], xv, wv);
      }
    }
    for (int i = 0; i < C; ++i) {
      __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc[i]),
                                _mm256_extracti128_si256(acc[i], 1));
      s = _mm_hadd_epi32(s, s);
      s = _mm_hadd_epi32(s, s);
      out[i] = _mm_cvtsi128_si32(s);
    }
  }
};

}  // namespace

void Int8Weight(const Int8WeightView& w, const float* xp, const int16_t*,
                const float*, int64_t m, const float* bias, float* y,
                int64_t n0, int64_t n1) {
  Int8WeightRows<Blocks>(w, xp, nullptr, m, bias, y, n0, n1);
}

void Int4Weight(const Int4WeightView& w, const float*, const float* xsum,
                const int16_t* x16, const float* s16, int64_t m,
                const float* bias, float* y, int64_t n0, int64_t n1) {
  Int4WeightRows<Blocks>(w, xsum, x16, s16, m, bias, y, n0, n1);
}

void Int8Dynamic(const Int8WeightView& w, const uint8_t* xq, const float* sx,
                 const int32_t* zx, int64_t m, const float* bias, float* y,
                 int64_t n0, int64_t n1) {
  Int8DynamicRows<Blocks>(w, xq, sx, zx, m, bias, y, n0, n1);
}

}  // namespace avx512
}  // namespace linear_internal
}  // namespace twinserve
