#include "kernels/packed_linear.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>

#include "kernels/packed_linear_internal.h"

namespace twinserve {
namespace {

int64_t RoundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Scratch per thread: a call allocates nothing once warm.
template <typename T>
T* Scratch(std::vector<T>* buf, size_t size) {
  if (buf->size() < size) buf->resize(size);
  return buf->data();
}

// x [m, k] -> [m, k_padded], each input multiplied by `mul` when given.
const float* PadRows(const float* x, int64_t m, int64_t k, int64_t k_padded,
                     const float* mul) {
  if (k == k_padded && mul == nullptr) return x;
  thread_local std::vector<float> buf;
  float* out = Scratch(&buf, m * k_padded);
  for (int64_t r = 0; r < m; ++r) {
    const float* src = x + r * k;
    float* dst = out + r * k_padded;
    if (mul == nullptr) {
      std::memcpy(dst, src, k * sizeof(float));
    } else {
      for (int64_t j = 0; j < k; ++j) dst[j] = src[j] * mul[j];
    }
    std::fill(dst + k, dst + k_padded, 0.0f);
  }
  return out;
}

// Rows of x as int16, x ~= scale[r] * q[r, :] (per row, symmetric), in
// per-thread scratch.
struct Rows16 {
  const int16_t* q = nullptr;
  const float* scale = nullptr;
};

Rows16 QuantizeRows16(const float* xp, int64_t m, int64_t k_padded) {
  thread_local std::vector<int16_t> qbuf;
  thread_local std::vector<float> sbuf;
  int16_t* q = Scratch(&qbuf, m * k_padded);
  float* s = Scratch(&sbuf, m);
  for (int64_t r = 0; r < m; ++r) {
    const float* v = xp + r * k_padded;
    float amax = 0;
    for (int64_t j = 0; j < k_padded; ++j)
      amax = std::max(amax, std::fabs(v[j]));
    const float scale = amax > 0 ? amax / 32767.0f : 1.0f;
    const float inv = 1.0f / scale;
    for (int64_t j = 0; j < k_padded; ++j) {
      q[r * k_padded + j] = static_cast<int16_t>(std::nearbyint(v[j] * inv));
    }
    s[r] = scale;
  }
  return {q, s};
}

// The fastest path at or below `asked` that this CPU runs.
KernelPath Resolve(KernelPath asked) {
  if (asked == KernelPath::kAvx512Vnni &&
      CpuSupports(KernelPath::kAvx512Vnni)) {
    return KernelPath::kAvx512Vnni;
  }
  if (asked != KernelPath::kScalar && CpuSupports(KernelPath::kAvx2)) {
    return KernelPath::kAvx2;
  }
  return KernelPath::kScalar;
}

// Calls the kernel of a resolved `path`.
#define DISPATCH(fn, ...)                              \
  switch (path) {                                      \
    case KernelPath::kAvx512Vnni:                      \
      return linear_internal::avx512::fn(__VA_ARGS__); \
    case KernelPath::kAvx2:                            \
      return linear_internal::avx2::fn(__VA_ARGS__);   \
    case KernelPath::kScalar:                          \
      return linear_internal::scalar::fn(__VA_ARGS__); \
  }

}  // namespace

PackedInt8 PackInt8(const float* w, int64_t n, int64_t k) {
  PackedInt8 p;
  p.n = n;
  p.k = k;
  p.k_padded = RoundUp(std::max<int64_t>(k, 1), kKBlock);
  p.q.assign(n * p.k_padded, 0);
  p.scale.resize(n);
  p.row_sum.resize(n);
  for (int64_t r = 0; r < n; ++r) {
    const float* row = w + r * k;
    float amax = 0;
    for (int64_t j = 0; j < k; ++j) amax = std::max(amax, std::fabs(row[j]));
    const float scale = amax > 0 ? amax / 127.0f : 1.0f;
    p.scale[r] = scale;
    int32_t sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int v = static_cast<int>(std::lround(row[j] / scale));
      const int8_t q = static_cast<int8_t>(std::clamp(v, -127, 127));
      p.q[r * p.k_padded + j] = q;
      sum += q;
    }
    p.row_sum[r] = sum;
  }
  return p;
}

PackedInt4 PackInt4(const float* w, int64_t n, int64_t k, int64_t group,
                    const float* input_scale) {
  PackedInt4 p;
  p.n = n;
  p.k = k;
  p.group = group;
  p.k_padded = RoundUp(std::max<int64_t>(k, 1), group);
  const int64_t groups = p.k_padded / group;
  p.q.assign(n * p.k_padded / 2, 0);
  p.scale.resize(n * groups);
  p.zero.resize(n * groups);
  if (input_scale != nullptr) {
    p.input_scale.resize(k);
    for (int64_t j = 0; j < k; ++j) p.input_scale[j] = 1.0f / input_scale[j];
  }
  std::vector<float> vals(p.k_padded);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < p.k_padded; ++j) {
      vals[j] =
          j < k ? w[r * k + j] * (input_scale ? input_scale[j] : 1.0f) : 0.0f;
    }
    uint8_t* qrow = p.q.data() + r * p.k_padded / 2;
    for (int64_t g = 0; g < groups; ++g) {
      const float* v = vals.data() + g * group;
      // The group's range, with 0 inside it so padding stays exact.
      float lo = 0, hi = 0;
      for (int64_t j = 0; j < group; ++j) {
        lo = std::min(lo, v[j]);
        hi = std::max(hi, v[j]);
      }
      const float scale = hi > lo ? (hi - lo) / 15.0f : 1.0f;
      const float zero = std::clamp(std::nearbyint(-lo / scale), 0.0f, 15.0f);
      p.scale[r * groups + g] = scale;
      p.zero[r * groups + g] = zero;
      for (int64_t j = 0; j < group; ++j) {
        const int q = static_cast<int>(
            std::clamp(std::nearbyint(v[j] / scale) + zero, 0.0f, 15.0f));
        const int64_t at = g * group + j;  // input index in the row
        const int64_t block = at / 32, in_block = at % 32;
        uint8_t& byte = qrow[block * 16 + (in_block % 16)];
        byte |= in_block < 16 ? q : q << 4;
      }
    }
  }
  return p;
}

void DequantizeChannels(const Int8WeightView& w, int64_t c0, int64_t c1,
                        float* out, KernelPath path) {
  if (Resolve(path) != KernelPath::kScalar) {
    return linear_internal::avx2::DequantizeInt8(w, c0, c1, out);
  }
  linear_internal::scalar::DequantizeInt8(w, c0, c1, out);
}

void DequantizeChannels(const Int4WeightView& w, int64_t c0, int64_t c1,
                        float* out, KernelPath path) {
  if (Resolve(path) != KernelPath::kScalar) {
    return linear_internal::avx2::DequantizeInt4(w, c0, c1, out);
  }
  linear_internal::scalar::DequantizeInt4(w, c0, c1, out);
}

std::vector<float> Unpack(const PackedInt8& p) {
  std::vector<float> w(p.n * p.k);
  DequantizeChannels(p, 0, p.n, w.data(), KernelPath::kScalar);
  return w;
}

std::vector<float> Unpack(const PackedInt4& p) {
  std::vector<float> w(p.n * p.k);
  DequantizeChannels(p, 0, p.n, w.data(), KernelPath::kScalar);
  return w;
}

void LinearInt8Weight(const Int8WeightView& w, const float* x, int64_t m,
                      const float* bias, float* y, KernelPath path,
                      int64_t n_begin, int64_t n_end) {
  if (n_end < 0) n_end = w.n;
  if (m <= 0 || n_begin >= n_end) return;
  path = Resolve(path);
  const float* xp = PadRows(x, m, w.k, w.k_padded, nullptr);
  // The AVX2 path takes 16-bit inputs, as INT4 does (1.5e-5 of the row's
  // largest input, far below the weights' 8 bits); AVX-512 takes floats.
  const Rows16 x16 =
      path == KernelPath::kAvx2 ? QuantizeRows16(xp, m, w.k_padded) : Rows16{};
  DISPATCH(Int8Weight, w, xp, x16.q, x16.scale, m, bias, y, n_begin, n_end)
}

void LinearInt4Weight(const Int4WeightView& w, const float* x, int64_t m,
                      const float* bias, float* y, KernelPath path,
                      int64_t n_begin, int64_t n_end) {
  if (n_end < 0) n_end = w.n;
  if (m <= 0 || n_begin >= n_end) return;
  path = Resolve(path);
  const float* xp = PadRows(x, m, w.k, w.k_padded, w.input_scale);
  const int64_t groups = w.k_padded / w.group;
  thread_local std::vector<float> sums;
  float* xsum = Scratch(&sums, m * groups);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float* v = xp + r * w.k_padded + g * w.group;
      float s = 0;
      for (int64_t j = 0; j < w.group; ++j) s += v[j];
      xsum[r * groups + g] = s;
    }
  }
  // SIMD paths multiply nibbles by 16-bit inputs (per row, symmetric:
  // about 1.5e-5 of the row's largest input, far below the weights' 4 bits).
  const Rows16 x16 = path != KernelPath::kScalar
                         ? QuantizeRows16(xp, m, w.k_padded)
                         : Rows16{};
  DISPATCH(Int4Weight, w, xp, xsum, x16.q, x16.scale, m, bias, y, n_begin,
           n_end)
}

void LinearInt8Dynamic(const Int8WeightView& w, const float* x, int64_t m,
                       const float* bias, float* y, KernelPath path,
                       int64_t n_begin, int64_t n_end) {
  if (n_end < 0) n_end = w.n;
  if (m <= 0 || n_begin >= n_end) return;
  path = Resolve(path);
  thread_local std::vector<uint8_t> qbuf;
  thread_local std::vector<float> sbuf;
  thread_local std::vector<int32_t> zbuf;
  uint8_t* xq = Scratch(&qbuf, m * w.k_padded);
  float* sx = Scratch(&sbuf, m);
  int32_t* zx = Scratch(&zbuf, m);
  for (int64_t r = 0; r < m; ++r) {
    const float* row = x + r * w.k;
    float lo = 0, hi = 0;  // 0 inside the range: it is exact
    for (int64_t j = 0; j < w.k; ++j) {
      lo = std::min(lo, row[j]);
      hi = std::max(hi, row[j]);
    }
    const float scale = hi > lo ? (hi - lo) / 127.0f : 1.0f;
    const int32_t zero = static_cast<int32_t>(
        std::clamp(std::nearbyint(-lo / scale), 0.0f, 127.0f));
    const float inv = 1.0f / scale;
    uint8_t* q = xq + r * w.k_padded;
    for (int64_t j = 0; j < w.k; ++j) {
      q[j] = static_cast<uint8_t>(std::clamp(
          static_cast<int32_t>(std::nearbyint(row[j] * inv)) + zero, 0, 127));
    }
    // Padding quantizes 0, which is `zero`; the weights there are 0 anyway.
    std::fill(q + w.k, q + w.k_padded, static_cast<uint8_t>(zero));
    sx[r] = scale;
    zx[r] = zero;
  }
  DISPATCH(Int8Dynamic, w, xq, sx, zx, m, bias, y, n_begin, n_end)
}

// The scalar reference: the plain sums the SIMD paths must match.
namespace linear_internal {
namespace scalar {

void Int8Weight(const Int8WeightView& w, const float* xp, const int16_t*,
                const float*, int64_t m, const float* bias, float* y,
                int64_t n0, int64_t n1) {
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = xp + r * w.k_padded;
    for (int64_t c = n0; c < n1; ++c) {
      const int8_t* q = w.q + c * w.k_padded;
      float acc = 0;
      for (int64_t j = 0; j < w.k_padded; ++j) acc += q[j] * xr[j];
      y[r * w.n + c] = acc * w.scale[c] + (bias ? bias[c] : 0.0f);
    }
  }
}

void Int4Weight(const Int4WeightView& w, const float* xp, const float* xsum,
                const int16_t*, const float*, int64_t m, const float* bias,
                float* y, int64_t n0, int64_t n1) {
  const int64_t groups = w.k_padded / w.group;
  for (int64_t r = 0; r < m; ++r) {
    const float* xr = xp + r * w.k_padded;
    for (int64_t c = n0; c < n1; ++c) {
      const uint8_t* qrow = w.q + c * w.k_padded / 2;
      float acc = 0;
      for (int64_t g = 0; g < groups; ++g) {
        float dot = 0;
        for (int64_t j = g * w.group; j < (g + 1) * w.group; ++j) {
          const uint8_t byte = qrow[(j / 32) * 16 + (j % 32) % 16];
          const int q = (j % 32) < 16 ? (byte & 15) : (byte >> 4);
          dot += q * xr[j];
        }
        const int64_t at = c * groups + g;
        acc += w.scale[at] * (dot - w.zero[at] * xsum[r * groups + g]);
      }
      y[r * w.n + c] = acc + (bias ? bias[c] : 0.0f);
    }
  }
}

void Int8Dynamic(const Int8WeightView& w, const uint8_t* xq, const float* sx,
                 const int32_t* zx, int64_t m, const float* bias, float* y,
                 int64_t n0, int64_t n1) {
  for (int64_t r = 0; r < m; ++r) {
    const uint8_t* xr = xq + r * w.k_padded;
    for (int64_t c = n0; c < n1; ++c) {
      const int8_t* q = w.q + c * w.k_padded;
      int32_t dot = 0;
      for (int64_t j = 0; j < w.k_padded; ++j) dot += xr[j] * q[j];
      dot -= zx[r] * w.row_sum[c];
      y[r * w.n + c] = sx[r] * w.scale[c] * static_cast<float>(dot) +
                       (bias ? bias[c] : 0.0f);
    }
  }
}

void DequantizeInt8(const Int8WeightView& w, int64_t c0, int64_t c1,
                    float* out) {
  for (int64_t r = c0; r < c1; ++r) {
    const int8_t* q = w.q + r * w.k_padded;
    const float s = w.scale[r];
    float* o = out + (r - c0) * w.k;
    for (int64_t j = 0; j < w.k; ++j) o[j] = s * q[j];
  }
}

void DequantizeInt4(const Int4WeightView& w, int64_t c0, int64_t c1,
                    float* out) {
  const int64_t groups = w.k_padded / w.group;
  float lo[16], hi[16];  // one 32-input block's nibbles as floats
  for (int64_t r = c0; r < c1; ++r) {
    const uint8_t* qrow = w.q + r * w.k_padded / 2;
    float* o = out + (r - c0) * w.k;
    for (int64_t b = 0; b * 32 < w.k; ++b) {
      const uint8_t* bytes = qrow + b * 16;
      for (int i = 0; i < 16; ++i) {
        lo[i] = bytes[i] & 15;
        hi[i] = bytes[i] >> 4;
      }
      // A 32-input block lies inside one group (groups are multiples of 32).
      const int64_t g = r * groups + b * 32 / w.group;
      const float s = w.scale[g], z = w.zero[g];
      const int64_t end = std::min<int64_t>(32, w.k - b * 32);
      for (int64_t i = 0; i < end; ++i) {
        o[b * 32 + i] = s * ((i < 16 ? lo[i] : hi[i - 16]) - z);
      }
    }
    if (w.input_scale != nullptr) {
      for (int64_t j = 0; j < w.k; ++j) o[j] *= w.input_scale[j];
    }
  }
}

}  // namespace scalar
}  // namespace linear_internal
}  // namespace twinserve
