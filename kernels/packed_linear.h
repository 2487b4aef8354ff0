// Weight-only quantized Linear layers: y = x W^T + b with W [N, K] stored
// as INT8 (one scale per output channel) or INT4 (a scale and a zero point
// per group of 32, 64 or 128 inputs of a channel), x [M, K] and y [M, N]
// FP32. At small M a Linear layer streams every weight once per call, so it
// is bound by memory bandwidth: INT8 reads 4x fewer bytes than FP32 and
// INT4 8x. INT8 also has a dynamic form: x quantized per row at run time to
// unsigned 7 bits (so AVX2's u8 x s8 pair products cannot saturate) and
// exact integer dot products.
//
// Every kernel has a scalar reference and SIMD paths (kernels/
// cpu_features.h); the default is the best this CPU has. Plain C++ over raw
// buffers: no LibTorch.
#ifndef TWINSERVE_KERNELS_PACKED_LINEAR_H_
#define TWINSERVE_KERNELS_PACKED_LINEAR_H_

#include <cstdint>
#include <vector>

#include "kernels/cpu_features.h"

namespace twinserve {

// Rows are padded with zeros to a multiple of kKBlock inputs, so SIMD loops
// need no tails.
inline constexpr int64_t kKBlock = 32;

struct PackedInt8 {
  int64_t n = 0;                 // output channels
  int64_t k = 0;                 // inputs
  int64_t k_padded = 0;          // k rounded up to kKBlock
  std::vector<int8_t> q;         // [n, k_padded], symmetric, in [-127, 127]
  std::vector<float> scale;      // [n]: w = scale * q
  std::vector<int32_t> row_sum;  // [n]: sum of q, for the dynamic form
  int64_t bytes() const {
    return static_cast<int64_t>(q.size() + 4 * scale.size());
  }
};

struct PackedInt4 {
  int64_t n = 0;
  int64_t k = 0;
  int64_t k_padded = 0;  // k rounded up to `group`
  int64_t group = 0;     // 32, 64 or 128
  // [n, k_padded / 2]. Per 32 inputs, 16 bytes: byte j holds input j in its
  // low nibble and input j + 16 in its high one (two SIMD-friendly halves).
  std::vector<uint8_t> q;
  std::vector<float> scale;  // [n, k_padded / group]
  std::vector<float> zero;   // same: w = scale * (q - zero), zero in [0, 15]
  // Empty, or [k]: the inputs were scaled by 1 / input_scale before
  // quantization (activation-aware scaling), so x is multiplied by it.
  std::vector<float> input_scale;
  int64_t bytes() const {
    return static_cast<int64_t>(
        q.size() + 4 * (scale.size() + zero.size() + input_scale.size()));
  }
};

// What the kernels read: the packed arrays by pointer, so that a caller can
// keep them anywhere (a PackedInt8's vectors, tensors in a TorchScript
// module). Same layout and meaning as the structs above.
struct Int8WeightView {
  int64_t n = 0, k = 0, k_padded = 0;
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  const int32_t* row_sum = nullptr;
  Int8WeightView() = default;
  Int8WeightView(const PackedInt8& p)  // NOLINT: a view of p
      : n(p.n),
        k(p.k),
        k_padded(p.k_padded),
        q(p.q.data()),
        scale(p.scale.data()),
        row_sum(p.row_sum.data()) {}
};

struct Int4WeightView {
  int64_t n = 0, k = 0, k_padded = 0, group = 0;
  const uint8_t* q = nullptr;
  const float* scale = nullptr;
  const float* zero = nullptr;
  const float* input_scale = nullptr;  // null: none
  Int4WeightView() = default;
  Int4WeightView(const PackedInt4& p)  // NOLINT: a view of p
      : n(p.n),
        k(p.k),
        k_padded(p.k_padded),
        group(p.group),
        q(p.q.data()),
        scale(p.scale.data()),
        zero(p.zero.data()),
        input_scale(p.input_scale.empty() ? nullptr : p.input_scale.data()) {}
};

// `w` is [n, k] row-major FP32.
PackedInt8 PackInt8(const float* w, int64_t n, int64_t k);
// `input_scale` (optional, [k], positive): W[:, j] is multiplied by
// input_scale[j] before quantization and x[:, j] divided by it at run time,
// which is exact in real arithmetic and moves precision to the inputs that
// matter (AWQ). Group must be 32, 64 or 128.
PackedInt4 PackInt4(const float* w, int64_t n, int64_t k, int64_t group,
                    const float* input_scale = nullptr);

// The FP32 weights a packed matrix stands for, [n, k] (tests, evaluation).
std::vector<float> Unpack(const PackedInt8& p);
std::vector<float> Unpack(const PackedInt4& p);

// Channels [c0, c1) as FP32 weights, out [c1 - c0, k] (k, not k_padded),
// input scaling folded in: what a caller hands to an FP32 GEMM when
// several rows share one pass over the weights.
void DequantizeChannels(const Int8WeightView& w, int64_t c0, int64_t c1,
                        float* out, KernelPath path = BestKernelPath());
void DequantizeChannels(const Int4WeightView& w, int64_t c0, int64_t c1,
                        float* out, KernelPath path = BestKernelPath());

// y [m, n] = x [m, k] W^T + bias ([n], may be null). Rows [n_begin, n_end)
// of the output only (callers split N over threads); n_end = -1 means n.
void LinearInt8Weight(const Int8WeightView& w, const float* x, int64_t m,
                      const float* bias, float* y,
                      KernelPath path = BestKernelPath(), int64_t n_begin = 0,
                      int64_t n_end = -1);
void LinearInt4Weight(const Int4WeightView& w, const float* x, int64_t m,
                      const float* bias, float* y,
                      KernelPath path = BestKernelPath(), int64_t n_begin = 0,
                      int64_t n_end = -1);
void LinearInt8Dynamic(const Int8WeightView& w, const float* x, int64_t m,
                       const float* bias, float* y,
                       KernelPath path = BestKernelPath(), int64_t n_begin = 0,
                       int64_t n_end = -1);

}  // namespace twinserve

#endif  // TWINSERVE_KERNELS_PACKED_LINEAR_H_
