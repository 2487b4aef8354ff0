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
  // int8 weights widened to int16 and multiplied by the 16-bit inputs in
  // pairs (pmaddwd): half the instructions of converting every weight to
  // float. Exact int32 sums over 1,024 inputs (each lane adds 128 products
  // of at most 127 * 32767: under 2^29), then one float conversion.
  template <int C>
  static void Int8Weight(const Int8WeightView& w, const int16_t* xr, float sr,
                         int64_t c, float* out) {
    const int8_t* q[C];
    __m256 total[C];
    for (int i = 0; i < C; ++i) {
      q[i] = w.q + (c + i) * w.k_padded;
      total[i] = _mm256_setzero_ps();
    }
    for (int64_t j0 = 0; j0 < w.k_padded; j0 += 1024) {
      const int64_t j1 = j0 + 1024 < w.k_padded ? j0 + 1024 : w.k_padded;
      __m256i acc[C];
      for (int i = 0; i < C; ++i) acc[i] = _mm256_setzero_si256();
      for (int64_t j = j0; j < j1; j += 32) {
        const __m256i x0 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + j));
        const __m256i x1 =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xr + j + 16));
        for (int i = 0; i < C; ++i) {
          const __m256i b =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q[i] + j));
          const __m256i w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(b));
          const __m256i w1 =
              _mm256_cvtepi8_epi16(_mm256_extracti128_si256(b, 1));
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(w0, x0));
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(w1, x1));
        }
      }
      for (int i = 0; i < C; ++i) {
        total[i] = _mm256_add_ps(total[i], _mm256_cvtepi32_ps(acc[i]));
      }
    }
    for (int i = 0; i < C; ++i) out[i] = Hsum(total[i]) * sr;
  }

  // Nibbles widened to int16 and multiplied by the 16-bit inputs in pairs
  // (pmaddwd): exact int32 sums per group (15 * 32767 * 128 < 2^31), one
  // float conversion per group instead of one per weight.
  template <int C>
  static void Int4Weight(const Int4WeightView& w, const int16_t* xr, float sr,
                         const float* xs, int64_t c, float* out) {
    const int64_t groups = w.k_padded / w.group;
    const __m256i low4 = _mm256_set1_epi16(0x0F);
    // Bytes 0-7 to the low lane's words, 8-15 to the high lane's: an
    // in-lane shuffle, cheaper than vpmovzxbw's lane crossing on Zen.
    const __m256i widen = _mm256_setr_epi8(
        0, -1, 1, -1, 2, -1, 3, -1, 4, -1, 5, -1, 6, -1, 7, -1, 8, -1, 9, -1,
        10, -1, 11, -1, 12, -1, 13, -1, 14, -1, 15, -1);
    const uint8_t* q[C];
    __m256 total[C];
    float corr[C];
    for (int i = 0; i < C; ++i) {
      q[i] = w.q + (c + i) * w.k_padded / 2;
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
          // Whole bytes widened once: the low nibble is a mask away and
          // the high one a shift (a byte's high nibble is all of it >> 4).
          const __m256i b = _mm256_shuffle_epi8(
              _mm256_broadcastsi128_si256(_mm_loadu_si128(
                  reinterpret_cast<const __m128i*>(q[i] + j / 2))),
              widen);
          const __m256i lo = _mm256_and_si256(b, low4);
          const __m256i hi = _mm256_srli_epi16(b, 4);
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(lo, x0));
          acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(hi, x1));
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
  static void Int8Dynamic(const Int8WeightView& w, const uint8_t* xr, int64_t c,
                          int32_t* out) {
    const __m256i ones = _mm256_set1_epi16(1);
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
        // u7 x s8 pair sums fit in int16: no saturation.
        const __m256i p = _mm256_maddubs_epi16(xv, wv);
        acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, ones));
      }
    }
    for (int i = 0; i < C; ++i) out[i] = HsumI(acc[i]);
  }
};

}  // namespace

void Int8Weight(const Int8WeightView& w, const float* xp, const int16_t* x16,
                const float* s16, int64_t m, const float* bias, float* y,
                int64_t n0, int64_t n1) {
  Int8WeightRows<Blocks>(w, x16, s16, m, bias, y, n0, n1);
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

void DequantizeInt8(const Int8WeightView& w, int64_t c0, int64_t c1,
                    float* out) {
  for (int64_t r = c0; r < c1; ++r) {
    const int8_t* q = w.q + r * w.k_padded;
    const float scale = w.scale[r];
    const __m256 s = _mm256_set1_ps(scale);
    float* o = out + (r - c0) * w.k;
    int64_t j = 0;
    for (; j + 8 <= w.k; j += 8) {
      _mm256_storeu_ps(o + j, _mm256_mul_ps(s, LoadI8(q + j)));
    }
    for (; j < w.k; ++j) o[j] = scale * q[j];
  }
}

void DequantizeInt4(const Int4WeightView& w, int64_t c0, int64_t c1,
                    float* out) {
  const int64_t groups = w.k_padded / w.group;
  const __m128i low4 = _mm_set1_epi8(0x0F);
  alignas(32) float block[32];
  for (int64_t r = c0; r < c1; ++r) {
    const uint8_t* qrow = w.q + r * w.k_padded / 2;
    float* o = out + (r - c0) * w.k;
    for (int64_t b = 0; b * 32 < w.k; ++b) {
      const int64_t g = r * groups + b * 32 / w.group;
      // w = s * (q - z) = q * s + (-s * z).
      const __m256 s = _mm256_set1_ps(w.scale[g]);
      const __m256 sz = _mm256_set1_ps(-w.scale[g] * w.zero[g]);
      const __m128i bytes =
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(qrow + b * 16));
      const __m128i lo = _mm_and_si128(bytes, low4);
      const __m128i hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low4);
      const bool full = b * 32 + 32 <= w.k;
      float* dst = full ? o + b * 32 : block;
      const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi,
                                _mm_srli_si128(hi, 8)};
      for (int i = 0; i < 4; ++i) {
        const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[i]));
        _mm256_storeu_ps(dst + 8 * i, _mm256_fmadd_ps(v, s, sz));
      }
      if (!full) {
        for (int64_t i = 0; b * 32 + i < w.k; ++i) o[b * 32 + i] = block[i];
      }
    }
    if (w.input_scale != nullptr) {
      int64_t j = 0;
      for (; j + 8 <= w.k; j += 8) {
        _mm256_storeu_ps(o + j,
                         _mm256_mul_ps(_mm256_loadu_ps(o + j),
                                       _mm256_loadu_ps(w.input_scale + j)));
      }
      for (; j < w.k; ++j) o[j] *= w.input_scale[j];
    }
  }
}

}  // namespace avx2
}  // namespace linear_internal
}  // namespace twinserve
