// The per-request cost of the routing decision, in process:
//   bazel run //server/traffic:routing_benchmark -- --benchmark_repetitions=5
// (The statistics each request records: //server/serving:stats_benchmark.)
#include <benchmark/benchmark.h>

#include "server/traffic/router.h"

namespace twinserve {
namespace {

void BM_DecideWeightedWithKey(benchmark::State& state) {
  TrafficPolicy p;
  p.kind = PolicyKind::kWeighted;
  p.weights = {{"fp32", 90}, {"int8", 10}};
  uint64_t draw = 0x9e3779b97f4a7c15ull;
  for (auto _ : state) {
    draw = draw * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(Decide(p, "user-12345", draw));
  }
}
BENCHMARK(BM_DecideWeightedWithKey);

void BM_DecideRolloutWithComparison(benchmark::State& state) {
  TrafficPolicy p;
  p.kind = PolicyKind::kRollout;
  p.candidate = "int8";
  p.steps = {10, 50, 100};
  uint64_t draw = 1;
  for (auto _ : state) {
    draw = draw * 6364136223846793005ull + 1442695040888963407ull;
    benchmark::DoNotOptimize(Decide(p, "", draw));
  }
}
BENCHMARK(BM_DecideRolloutWithComparison);

}  // namespace
}  // namespace twinserve

BENCHMARK_MAIN();
