// The Linear ops as a model calls them (tensors in and out, threads split,
// GEMM past the crossover) against LibTorch's FP32 linear on the same
// shapes, one intra-op thread (and two for batch 1): what the ops add
// around the kernels of kernels/packed_linear_benchmark.
//   bazel run //server/runtime:linear_ops_benchmark
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "kernels/packed_linear.h"
#include "server/runtime/linear_ops.h"

namespace twinserve {
namespace {

struct Layer {
  at::Tensor w, b;
  PackedLinear i8, i4;  // i8 also serves the dynamic op
  explicit Layer(int64_t n, int64_t k) {
    at::manual_seed(0);
    w = at::randn({n, k});
    b = at::randn({n});
    i8 = ToTensors(PackInt8(w.data_ptr<float>(), n, k));
    i4 = ToTensors(PackInt4(w.data_ptr<float>(), n, k, 128));
  }
};

// 0: FP32 at::linear, 1: int8-weight GEMV, 2: int8-weight GEMM,
// 3: int4-weight GEMV, 4: int4-weight GEMM, 5: int8-dynamic GEMV,
// 6: int8-dynamic GEMM.
void BM_Linear(benchmark::State& state) {
  at::set_num_threads(state.range(4));
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const int kind = static_cast<int>(state.range(3));
  static Layer* layer = nullptr;
  if (layer == nullptr || layer->w.size(0) != n || layer->w.size(1) != k) {
    delete layer;
    layer = new Layer(n, k);
  }
  const at::Tensor x = at::randn({m, k});
  for (auto _ : state) {
    at::Tensor y;
    switch (kind) {
      case 0:
        y = at::linear(x, layer->w, layer->b);
        break;
      case 1:
      case 2:
        y = LinearInt8WeightOp(x, layer->i8.q, layer->i8.scale, layer->b, k,
                               kind == 2 ? 1 : 0);
        break;
      case 5:
      case 6:
        y = LinearInt8DynamicOp(x, layer->i8.q, layer->i8.scale,
                                layer->i8.row_sum, layer->b, k,
                                kind == 6 ? 1 : 0);
        break;
      default:
        y = LinearInt4WeightOp(x, layer->i4.q, layer->i4.scale, layer->i4.zero,
                               c10::nullopt, layer->b, k, 128,
                               kind == 4 ? 1 : 0);
    }
    benchmark::DoNotOptimize(y.data_ptr());
  }
  static const char* kNames[] = {"fp32",        "int8w gemv", "int8w gemm",
                                 "int4w gemv",  "int4w gemm", "int8dyn gemv",
                                 "int8dyn gemm"};
  state.SetLabel(kNames[kind]);
}
BENCHMARK(BM_Linear)
    ->ArgNames({"n", "k", "m", "kind", "threads"})
    ->ArgsProduct({{4096}, {1024}, {1, 64}, {0, 1, 2, 3, 4, 5, 6}, {1}})
    ->ArgsProduct({{1024}, {4096}, {1, 64}, {0, 1, 2, 3, 4, 5, 6}, {1}})
    // --intra_op_threads=2: the ops split output channels.
    ->ArgsProduct({{4096}, {1024}, {1}, {0, 1, 3, 5}, {2}})
    ->UseRealTime();

}  // namespace
}  // namespace twinserve

BENCHMARK_MAIN();
