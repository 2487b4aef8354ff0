// The Linear ops of linear_ops.cc as C++ functions, for the converter that
// measures them and for tests; models call them as twinserve.<op>. Packed
// arrays are tensors laid out as kernels/packed_linear.h says: q int8
// [out, in padded to 32] (INT8) or uint8 [out, in padded to group / 2]
// (INT4), scale and zero float32 [out] or [out, groups], row_sum int32
// [out], input_scale float32 [in] (multiplies x) or undefined.
//
// Includes LibTorch: for .cc files that already do.
#ifndef TWINSERVE_SERVER_RUNTIME_LINEAR_OPS_H_
#define TWINSERVE_SERVER_RUNTIME_LINEAR_OPS_H_

#include <ATen/ATen.h>

#include <cstdint>

#include "kernels/packed_linear.h"

namespace twinserve {

// x [..., in_features] float32 -> [..., out]. Each op switches to a
// dequantized FP32 GEMM from `gemm_from_rows` rows (0: never; the dynamic
// op's activations are then FP32 too). Errors are c10::Error naming the
// argument.
at::Tensor LinearInt8WeightOp(const at::Tensor& x, const at::Tensor& q,
                              const at::Tensor& scale,
                              const c10::optional<at::Tensor>& bias,
                              int64_t in_features, int64_t gemm_from_rows);
at::Tensor LinearInt4WeightOp(const at::Tensor& x, const at::Tensor& q,
                              const at::Tensor& scale, const at::Tensor& zero,
                              const c10::optional<at::Tensor>& input_scale,
                              const c10::optional<at::Tensor>& bias,
                              int64_t in_features, int64_t group,
                              int64_t gemm_from_rows);
at::Tensor LinearInt8DynamicOp(const at::Tensor& x, const at::Tensor& q,
                               const at::Tensor& scale,
                               const at::Tensor& row_sum,
                               const c10::optional<at::Tensor>& bias,
                               int64_t in_features, int64_t gemm_from_rows);

// One layer's packed arrays as the ops take them (undefined where unused).
struct PackedLinear {
  at::Tensor q, scale, zero, row_sum, input_scale;
  int64_t group = 0;     // INT4: 32, 64 or 128; 0 for INT8
  bool dynamic = false;  // INT8 run by linear_int8_dynamic
};
PackedLinear ToTensors(const PackedInt8& p, bool dynamic = false);
PackedLinear ToTensors(const PackedInt4& p);

// x [..., k] through the op `t` stands for, without bias.
at::Tensor RunPacked(const PackedLinear& t, const at::Tensor& x, int64_t k,
                     int64_t gemm_from_rows);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_RUNTIME_LINEAR_OPS_H_
