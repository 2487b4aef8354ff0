// TorchScript ops over kernels/packed_linear.h, so that a model converted
// to int8-weight, int4-weight or twinserve's dynamic INT8 is an ordinary
// TorchScript module: the packed weights are tensor constants, saved and
// loaded from the store like any variant's.
//
//   twinserve.linear_int8_weight(x, q, scale, bias, in_features,
//                                gemm_from_rows)
//   twinserve.linear_int4_weight(x, q, scale, zero, input_scale, bias,
//                                in_features, group, gemm_from_rows)
//   twinserve.linear_int8_dynamic(x, q, scale, row_sum, bias, in_features,
//                                 gemm_from_rows)
//
// x [..., in_features] FP32 -> [..., out_features]. The ops run the GEMV
// kernels below `gemm_from_rows` rows and, from there on,
// dequantize tiles of channels into FP32 and hand them to LibTorch's GEMM,
// which outruns a GEMV per row once rows share the weights (the converter
// measures the crossover per layer; 0 means never). Output channels are
// split over the intra-op threads (at::parallel_for), so
// --intra_op_threads governs these ops as it does LibTorch's own.
#include "server/runtime/linear_ops.h"

#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "kernels/cpu_features.h"
#include "kernels/packed_linear.h"
#include "server/common/logging.h"

namespace twinserve {
namespace {

// The path every op takes, logged the first time one runs.
KernelPath LoggedPath() {
  static const KernelPath path = [] {
    const KernelPath p = BestKernelPath();
    TS_LOG(INFO) << "linear kernels: " << KernelPathName(p) << " path";
    return p;
  }();
  return path;
}

void CheckTensor(const at::Tensor& t, at::ScalarType type, int64_t numel,
                 const char* what) {
  TORCH_CHECK(t.scalar_type() == type && t.is_contiguous() &&
                  t.numel() == numel && t.device().is_cpu(),
              "twinserve linear: ", what, " must be a contiguous CPU ",
              c10::toString(type), " tensor of ", numel, " elements, got ",
              t.scalar_type(), " ", t.sizes());
}

// x as [m, k] contiguous FP32.
at::Tensor Rows(const at::Tensor& x, int64_t k) {
  TORCH_CHECK(x.scalar_type() == at::kFloat,
              "twinserve linear: input must be float32, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1 && x.size(-1) == k,
              "twinserve linear: input's last dimension must be ", k,
              ", got shape ", x.sizes());
  return x.reshape({-1, k}).contiguous();
}

at::Tensor OutputShape(const at::Tensor& x, at::Tensor y, int64_t n) {
  std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
  shape.back() = n;
  return y.view(shape);
}

const float* BiasPointer(const c10::optional<at::Tensor>& bias, int64_t n) {
  if (!bias.has_value() || !bias->defined()) return nullptr;
  CheckTensor(*bias, at::kFloat, n, "bias");
  return bias->data_ptr<float>();
}

// Runs the kernel `gemv` (LinearInt8Weight, ...) over the output channels
// split among the intra-op threads, or, from `gemm_from_rows` rows, the
// weights dequantized tile by tile into an FP32 GEMM.
template <typename View, typename Gemv>
at::Tensor RunLinear(const at::Tensor& x, const View& w,
                     const c10::optional<at::Tensor>& bias,
                     int64_t gemm_from_rows, Gemv gemv) {
  const KernelPath path = LoggedPath();
  const int64_t k = w.k, n = w.n;
  at::Tensor rows = Rows(x, k);
  const int64_t m = rows.size(0);
  const float* b = BiasPointer(bias, n);
  at::Tensor y = at::empty({m, n}, rows.options());
  if (m == 0 || n == 0) return OutputShape(x, y, n);
  if (gemm_from_rows > 0 && m >= gemm_from_rows) {
    // About 4 MB of FP32 weights per tile: fewer, larger GEMMs measured
    // faster than L2-sized tiles (the GEMM blocks for cache itself).
    const int64_t tile =
        std::clamp<int64_t>((1 << 20) / std::max<int64_t>(k, 1), 16, n);
    at::Tensor wbuf = at::empty({tile, k}, rows.options());
    at::Tensor out = tile == n ? y : at::empty({m, tile}, rows.options());
    for (int64_t c0 = 0; c0 < n; c0 += tile) {
      const int64_t c1 = std::min(n, c0 + tile);
      at::Tensor wt = wbuf.narrow(0, 0, c1 - c0);
      DequantizeChannels(w, c0, c1, wt.data_ptr<float>(), path);
      at::Tensor ot = out.narrow(1, 0, c1 - c0);
      if (b != nullptr) {
        at::addmm_out(ot, bias->narrow(0, c0, c1 - c0), rows, wt.t());
      } else {
        at::mm_out(ot, rows, wt.t());
      }
      if (tile != n) y.narrow(1, c0, c1 - c0).copy_(ot);
    }
    return OutputShape(x, y, n);
  }
  const float* xp = rows.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  // Chunks of at least 64 channels: fewer and the threads' setup dominates.
  at::parallel_for(0, n, 64, [&](int64_t n0, int64_t n1) {
    gemv(w, xp, m, b, yp, path, n0, n1);
  });
  return OutputShape(x, y, n);
}

// The INT8 weights (q, scale) of op `op`, checked.
Int8WeightView Int8View(const char* op, const at::Tensor& q,
                        const at::Tensor& scale, int64_t in_features) {
  TORCH_CHECK(q.dim() == 2 && in_features > 0 && q.size(1) >= in_features, op,
              ": q must be [out, in padded]");
  Int8WeightView w;
  w.n = q.size(0);
  w.k = in_features;
  w.k_padded = q.size(1);
  CheckTensor(q, at::kChar, q.numel(), "q");
  CheckTensor(scale, at::kFloat, w.n, "scale");
  w.q = q.data_ptr<int8_t>();
  w.scale = scale.data_ptr<float>();
  return w;
}

}  // namespace

at::Tensor LinearInt8WeightOp(const at::Tensor& x, const at::Tensor& q,
                              const at::Tensor& scale,
                              const c10::optional<at::Tensor>& bias,
                              int64_t in_features, int64_t gemm_from_rows) {
  return RunLinear(
      x, Int8View("twinserve.linear_int8_weight", q, scale, in_features), bias,
      gemm_from_rows, &LinearInt8Weight);
}

at::Tensor LinearInt4WeightOp(const at::Tensor& x, const at::Tensor& q,
                              const at::Tensor& scale, const at::Tensor& zero,
                              const c10::optional<at::Tensor>& input_scale,
                              const c10::optional<at::Tensor>& bias,
                              int64_t in_features, int64_t group,
                              int64_t gemm_from_rows) {
  TORCH_CHECK(group == 32 || group == 64 || group == 128,
              "twinserve.linear_int4_weight: group must be 32, 64 or 128");
  TORCH_CHECK(q.dim() == 2 && in_features > 0 && (2 * q.size(1)) % group == 0 &&
                  2 * q.size(1) >= in_features,
              "twinserve.linear_int4_weight: q must be [out, in padded / 2]");
  Int4WeightView w;
  w.n = q.size(0);
  w.k = in_features;
  w.k_padded = 2 * q.size(1);
  w.group = group;
  const int64_t groups = w.k_padded / group;
  CheckTensor(q, at::kByte, q.numel(), "q");
  CheckTensor(scale, at::kFloat, w.n * groups, "scale");
  CheckTensor(zero, at::kFloat, w.n * groups, "zero");
  w.q = q.data_ptr<uint8_t>();
  w.scale = scale.data_ptr<float>();
  w.zero = zero.data_ptr<float>();
  if (input_scale.has_value() && input_scale->defined()) {
    CheckTensor(*input_scale, at::kFloat, in_features, "input_scale");
    w.input_scale = input_scale->data_ptr<float>();
  }
  return RunLinear(x, w, bias, gemm_from_rows, &LinearInt4Weight);
}

at::Tensor LinearInt8DynamicOp(const at::Tensor& x, const at::Tensor& q,
                               const at::Tensor& scale,
                               const at::Tensor& row_sum,
                               const c10::optional<at::Tensor>& bias,
                               int64_t in_features, int64_t gemm_from_rows) {
  Int8WeightView w =
      Int8View("twinserve.linear_int8_dynamic", q, scale, in_features);
  CheckTensor(row_sum, at::kInt, w.n, "row_sum");
  w.row_sum = row_sum.data_ptr<int32_t>();
  // Past the crossover, as int8-weight: FP32 activations (more accurate,
  // not less) through the dequantized GEMM.
  return RunLinear(x, w, bias, gemm_from_rows, &LinearInt8Dynamic);
}

PackedLinear ToTensors(const PackedInt8& p, bool dynamic) {
  PackedLinear t;
  t.dynamic = dynamic;
  t.q = at::empty({p.n, p.k_padded}, at::kChar);
  std::copy(p.q.begin(), p.q.end(), t.q.data_ptr<int8_t>());
  t.scale = at::empty({p.n}, at::kFloat);
  std::copy(p.scale.begin(), p.scale.end(), t.scale.data_ptr<float>());
  t.row_sum = at::empty({p.n}, at::kInt);
  std::copy(p.row_sum.begin(), p.row_sum.end(), t.row_sum.data_ptr<int32_t>());
  return t;
}

PackedLinear ToTensors(const PackedInt4& p) {
  PackedLinear t;
  const int64_t groups = p.k_padded / p.group;
  t.group = p.group;
  t.q = at::empty({p.n, p.k_padded / 2}, at::kByte);
  std::copy(p.q.begin(), p.q.end(), t.q.data_ptr<uint8_t>());
  t.scale = at::empty({p.n, groups}, at::kFloat);
  std::copy(p.scale.begin(), p.scale.end(), t.scale.data_ptr<float>());
  t.zero = at::empty({p.n, groups}, at::kFloat);
  std::copy(p.zero.begin(), p.zero.end(), t.zero.data_ptr<float>());
  if (!p.input_scale.empty()) {
    t.input_scale = at::empty({p.k}, at::kFloat);
    std::copy(p.input_scale.begin(), p.input_scale.end(),
              t.input_scale.data_ptr<float>());
  }
  return t;
}

at::Tensor RunPacked(const PackedLinear& t, const at::Tensor& x, int64_t k,
                     int64_t gemm_from_rows) {
  if (t.group > 0) {
    return LinearInt4WeightOp(x, t.q, t.scale, t.zero,
                              t.input_scale.defined()
                                  ? c10::optional<at::Tensor>(t.input_scale)
                                  : c10::nullopt,
                              c10::nullopt, k, t.group, gemm_from_rows);
  }
  if (t.dynamic) {
    return LinearInt8DynamicOp(x, t.q, t.scale, t.row_sum, c10::nullopt, k,
                               gemm_from_rows);
  }
  return LinearInt8WeightOp(x, t.q, t.scale, c10::nullopt, k, gemm_from_rows);
}

namespace {

TORCH_LIBRARY_FRAGMENT(twinserve, m) {
  m.def(
      "linear_int8_weight(Tensor x, Tensor q, Tensor scale, Tensor? bias, "
      "int in_features, int gemm_from_rows) -> Tensor",
      &LinearInt8WeightOp);
  m.def(
      "linear_int4_weight(Tensor x, Tensor q, Tensor scale, Tensor zero, "
      "Tensor? input_scale, Tensor? bias, int in_features, int group, "
      "int gemm_from_rows) -> Tensor",
      &LinearInt4WeightOp);
  m.def(
      "linear_int8_dynamic(Tensor x, Tensor q, Tensor scale, Tensor row_sum, "
      "Tensor? bias, int in_features, int gemm_from_rows) -> Tensor",
      &LinearInt8DynamicOp);
}

}  // namespace
}  // namespace twinserve
