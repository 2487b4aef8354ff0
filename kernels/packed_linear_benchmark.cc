// Weight-only Linear kernels against the machine's memory bandwidth.
//
// First a STREAM-like triad (a = b + s * c over three 64 MiB arrays,
// median of 7 passes) gives this machine's bytes/s; then each kernel
// reports the weight bytes it streams per second ("GB/s") and that as a
// share of the triad ("%stream"). At batch 1 a Linear layer reads every
// weight once, so %stream is how close it is to the memory roof. Weights
// that fit in the last-level cache can exceed 100%: the 8192x8192 shapes
// do not fit.
//   bazel run -c opt //kernels:packed_linear_benchmark
//   TWINSERVE_KERNEL_PATH=scalar ... (compare paths)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "kernels/packed_linear.h"

namespace twinserve {
namespace {

double g_stream_bytes_per_s = 0;

double MeasureTriad() {
  const size_t n = (64u << 20) / sizeof(float);
  std::vector<float> a(n), b(n, 1.0f), c(n, 2.0f);
  std::vector<double> rates;
  for (int pass = 0; pass < 7; ++pass) {
    const auto t0 = std::chrono::steady_clock::now();
    const float s = 0.5f + pass;
    for (size_t i = 0; i < n; ++i) a[i] = b[i] + s * c[i];
    benchmark::DoNotOptimize(a.data());
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    rates.push_back(3.0 * n * sizeof(float) / secs);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

std::vector<float> Random(int64_t n, int seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

void Report(benchmark::State& state, int64_t weight_bytes) {
  state.counters["GB/s"] = benchmark::Counter(
      weight_bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["%stream"] =
      benchmark::Counter(weight_bytes * 100.0 / g_stream_bytes_per_s,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(KernelPathName(BestKernelPath()));
}

// Packs random weights with `pack` and times `kernel` on them for the
// shape in the benchmark's args: n (outputs), k (inputs), m (batch).
template <typename Pack, typename Kernel>
void Run(benchmark::State& state, Pack pack, Kernel kernel) {
  const int64_t n = state.range(0), k = state.range(1), m = state.range(2);
  const std::vector<float> w = Random(n * k, 1), x = Random(m * k, 2);
  const auto p = pack(w.data(), n, k);
  std::vector<float> y(m * n);
  for (auto _ : state) {
    kernel(p, x.data(), m, nullptr, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  Report(state, p.bytes());
}

void BM_Int8Weight(benchmark::State& state) {
  Run(state, PackInt8, [](auto&&... a) { LinearInt8Weight(a...); });
}

void BM_Int8Dynamic(benchmark::State& state) {
  Run(state, PackInt8, [](auto&&... a) { LinearInt8Dynamic(a...); });
}

template <int kGroup>
void BM_Int4Weight(benchmark::State& state) {
  Run(
      state,
      [](const float* w, int64_t n, int64_t k) {
        return PackInt4(w, n, k, kGroup);
      },
      [](auto&&... a) { LinearInt4Weight(a...); });
}

void Shapes(benchmark::internal::Benchmark* b) {
  for (auto nk : std::vector<std::pair<int, int>>{
           {1024, 1024}, {4096, 1024}, {1024, 4096}, {8192, 8192}}) {
    b->Args({nk.first, nk.second, 1});
  }
  b->Args({4096, 1024, 64});
  b->Args({1024, 4096, 64});
  b->ArgNames({"n", "k", "m"});
  b->Unit(benchmark::kMicrosecond);
  b->UseRealTime();
}

BENCHMARK(BM_Int8Weight)->Apply(Shapes);
BENCHMARK(BM_Int8Dynamic)->Apply(Shapes);
BENCHMARK_TEMPLATE(BM_Int4Weight, 32)->Apply(Shapes);
BENCHMARK_TEMPLATE(BM_Int4Weight, 64)->Apply(Shapes);
BENCHMARK_TEMPLATE(BM_Int4Weight, 128)->Apply(Shapes);

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) {
  twinserve::g_stream_bytes_per_s = twinserve::MeasureTriad();
  std::printf("STREAM-like triad: %.2f GB/s; kernel path: %s\n",
              twinserve::g_stream_bytes_per_s / 1e9,
              twinserve::KernelPathName(twinserve::BestKernelPath()));
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
