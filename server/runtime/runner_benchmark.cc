// Raw LibTorch forward vs the Runner (codec + forward + output copy) on the
// bundled Fashion-MNIST model, batch 1, one intra-op thread, side by side.
//   bazel run //server/runtime:runner_benchmark --
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <cstring>

#include "server/runtime/runner.h"

namespace twinserve {
namespace {

constexpr char kModel[] = "tests/fixtures/fashion_cnn.pt";

Signature FashionSignature() {
  Signature s;
  s.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}};
  s.outputs = {{"logits", DataType::kFp32, {-1, 10}}};
  return s;
}

void BM_RawLibTorchFrozenOptimized(benchmark::State& state) {
  at::set_num_threads(1);
  torch::jit::Module m = torch::jit::load(kModel);
  m.eval();
  torch::jit::Module frozen = torch::jit::freeze(m);
  m = torch::jit::optimize_for_inference(frozen);
  at::Tensor x = torch::rand({state.range(0), 1, 28, 28});
  c10::InferenceMode guard;
  for (int i = 0; i < 3; ++i) m.forward({x});
  for (auto _ : state) {
    at::Tensor y = m.forward({x}).toTensor();
    benchmark::DoNotOptimize(y.data_ptr());
  }
}
BENCHMARK(BM_RawLibTorchFrozenOptimized)->Arg(1)->Arg(32)->UseRealTime();

void BM_RawLibTorchScripted(benchmark::State& state) {
  at::set_num_threads(1);
  torch::jit::Module m = torch::jit::load(kModel);
  m.eval();
  at::Tensor x = torch::rand({state.range(0), 1, 28, 28});
  c10::InferenceMode guard;
  for (int i = 0; i < 3; ++i) m.forward({x});
  for (auto _ : state) {
    at::Tensor y = m.forward({x}).toTensor();
    benchmark::DoNotOptimize(y.data_ptr());
  }
}
BENCHMARK(BM_RawLibTorchScripted)->Arg(1)->Arg(32)->UseRealTime();

void BM_Runner(benchmark::State& state) {
  at::set_num_threads(1);
  auto runner = Runner::Load(kModel, FashionSignature(), RunnerOptions{});
  if (!runner.ok()) {
    state.SkipWithError(std::string(runner.status().message()).c_str());
    return;
  }
  const int64_t n = state.range(0);
  HostTensor x = HostTensor::Owned("image", DataType::kFp32, {n, 1, 28, 28},
                                   std::string(n * 784 * sizeof(float), '\0'));
  for (auto _ : state) {
    auto out = (*runner)->Run({x}, nullptr);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_Runner)->Arg(1)->Arg(32)->UseRealTime();

}  // namespace
}  // namespace twinserve

BENCHMARK_MAIN();
