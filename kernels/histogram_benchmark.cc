// Calibration hot paths: histogram accumulation over one activation tensor
// and the clipping-range searches over a 2048-bin histogram.
//   bazel run //kernels:histogram_benchmark -- --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "kernels/histogram.h"

namespace twinserve {
namespace {

std::vector<float> Activations(int64_t n) {
  std::mt19937 rng(0);
  std::exponential_distribution<float> exp(2.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = exp(rng);
  return v;
}

void BM_AccumulateHistogram(benchmark::State& state) {
  const auto v = Activations(state.range(0));
  std::vector<double> bins(2048, 0.0);
  for (auto _ : state) {
    AccumulateHistogram(v.data(), v.size(), 0.0f, 20.0f, bins.data(), 2048);
    benchmark::DoNotOptimize(bins.data());
  }
  state.SetItemsProcessed(state.iterations() * v.size());
}
// A ResNet-18 stem activation at batch 32 is 32 x 64 x 112 x 112 = 25.7M.
BENCHMARK(BM_AccumulateHistogram)->Arg(1 << 16)->Arg(1 << 22);

void BM_MinMax(benchmark::State& state) {
  const auto v = Activations(state.range(0));
  float lo, hi;
  for (auto _ : state) {
    MinMax(v.data(), v.size(), &lo, &hi);
    benchmark::DoNotOptimize(lo);
  }
  state.SetItemsProcessed(state.iterations() * v.size());
}
BENCHMARK(BM_MinMax)->Arg(1 << 22);

void BM_ChooseClipRange(benchmark::State& state) {
  const auto v = Activations(1 << 20);
  std::vector<double> bins(2048, 0.0);
  AccumulateHistogram(v.data(), v.size(), 0.0f, 20.0f, bins.data(), 2048);
  const auto method = static_cast<RangeMethod>(state.range(0));
  for (auto _ : state) {
    auto r =
        ChooseClipRange(bins.data(), 2048, 0.0f, 20.0f, method, 99.99, 256);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_ChooseClipRange)
    ->Arg(static_cast<int>(RangeMethod::kPercentile))
    ->Arg(static_cast<int>(RangeMethod::kEntropy))
    ->Arg(static_cast<int>(RangeMethod::kMse));

}  // namespace
}  // namespace twinserve

BENCHMARK_MAIN();
