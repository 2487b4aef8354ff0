// AVX2 + FMA loops (built with -mavx2 -mfma; called only when the CPU has
// them). Four output channels at a time share each load of the inputs.
#include <immintrin.h>

#include "kernels/packed_linear_internal.h"

namespace twinserve {
namespace linear_internal {
namespace avx2 {
namespace {

inline float Hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_hadd_ps(s, s);
  s = _mm_hadd_ps(s, s);
  return _mm_cvtss_f32(s);
}

inline int32_t HsumI(__m256i v) {
  __m128i s =
      _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_hadd_epi32(s, s);
  s = _mm_hadd_epi32(s, s);
  return _mm_cvtsi128_si32(s);
}

// Eight int8 weights as floats.
inline __m256 LoadI8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

struct Blocks {
  template <int C>
  static void Int8Weight(const PackedInt8& w, const float* xr, int64_t c,
                         float* out) {
    const int8_t* q[C];
    __m256 a0[C], a1[C];
    for (int i = 0; i < C; ++i) {
      q[i] = w.q.data() + (c + i) * w.k_padded;
      a0[i] = _mm256_setzero_ps();
      a1[i] = _mm256_setzero_ps();
    }
    for (int64_t j = 0; j < w.k_padded; j += 16) {
      const __m256 x0 = _mm256_loadu_ps(xr + j);
      const __m256 x1 = _mm256_loadu_ps(xr + j + 8);
      for (int i = 0; i < C; ++i) {
        a0[i] = _mm256_fmadd_ps(LoadI8(q[i] + j), x0, a0[i]);
        a1[i] = _mm256_fmadd_ps(LoadI8(q[i] + j + 8), x1, a1[i]);
      }
    }
    for (int i = 0; i < C; ++i) out[i] = Hsum(_mm256_add_ps(a0[i], a1[i]));
  }

  // Nibbles widened to int16 and multiplied by the 16-bit inputs in pairs
  // (pmaddwd): exact int32 sums per group (15 * 32767 * 128 < 2^31), one
  // float conversion per group instead of one per weight.
  template <int C>
  static void Int4Weight(const PackedInt4& w, const int16_t* xr, float sr,
                         const float* xs, int64_t c, float* out) {
    const int64_t groups = w.k_padded / w.group;
    const __m128i low4 = _mm_set1_epi8(0x0F);
    const uint8_t* q[C];
    __m256 total[C];
    float corr[C];
    for (int i = 0; i < C; ++i) {
      q[i] = w.q.data() + (c + i) * w.k_padded / 2;
      total[i] = _mm256_setzero_ps();
      corr[i] = 0;
    }
    for (int64_t g = 0; g < groups; ++g) {
      __m256i acc[C];
      for (int i = 0; i < C; ++i) acc[i] = _mm256_setzero_si256();
      for (int64_t j = g * w.group; j < (g + 1) * w.group; j += 32) {
        const __m256i x0 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + j));
        const __m256i x1 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + j + 16));
        for (int i = 0; i < C; ++i) {
          const __m128i b =
              _mm_loadu_si128(reinterpret_cast<const __m128i*>(q[i] + j / 2));
          const __m128i lo = _mm_and_si128(b, low4);
          const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), low4);
          acc[i] = _mm256_add_epi32(
              acc[i], _mm256_madd_epi16(_mm256_cvtepu8_epi16(lo), x0));
          acc[i] = _mm256_add_epi32(
              acc[i], _mm256_madd_epi16(_mm256_cvtepu8_epi16(hi), x1));
        }
      }
      for (int i = 0; i < C; ++i) {
        const int64_t at = (c + i) * groups + g;
        total[i] = _mm256_fmadd_ps(_mm256_set1_ps(w.scale[at] * sr),
                                   _mm256_cvtepi32_ps(acc[i]), total[i]);
        corr[i] += w.scale[at] * w.zero[at] * xs[g];
      }
    }
    for (int i = 0; i < C; ++i) out[i] = Hsum(total[i]) - corr[i];
  }

  template <int C>
  static void Int8Dynamic(const PackedInt8& w, const uint8_t* xr, int64_t c,
                          int32_t* out) {
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t* q[C];
    __m256i acc[C];
    for (int i = 0; i < C; ++i) {
      q[i] = w.q.data() + (c + i) * w.k_padded;
      acc[i] = _mm256_setzero_si256();
    }
    for (int64_t j = 0; j < w.k_padded; j += 32) {
      const __m256i xv =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + j));
      for (int i = 0; i < C; ++i) {
        const __m256i wv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[i] + j));
        // u7 x s8 pair sums fit in int16: no saturation.
        const __m256i p = _mm256_maddubs_epi16(xv, wv);
        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, ones));
      }
    }
    for (int i = 0; i < C; ++i) out[i] = HsumI(acc[i]);
  }
};

}  // namespace

void Int8Weight(const PackedInt8& w, const float* xp, int64_t m,
                const float* bias, float* y, int64_t n0, int64_t n1) {
  Int8WeightRows<Blocks>(w, xp, m, bias, y, n0, n1);
}

void Int4Weight(const PackedInt4& w, const float*, const float* xsum,
                const int16_t* x16, const float* s16, int64_t m,
                const float* bias, float* y, int64_t n0, int64_t n1) {
  Int4WeightRows<Blocks>(w, xsum, x16, s16, m, bias, y, n0, n1);
}

void Int8Dynamic(const PackedInt8& w, const uint8_t* xq, const float* sx,
                 const int32_t* zx, int64_t m, const float* bias, float* y,
                 int64_t n0, int64_t n1) {
  Int8DynamicRows<Blocks>(w, xq, sx, zx, m, bias, y, n0, n1);
}

}  // namespace avx2
}  // namespace linear_internal
}  // namespace twinserve
