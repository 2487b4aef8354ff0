// What the engine records per successful request (the live statistics every
// decision and export reads), in process:
//   bazel run //server/serving:stats_benchmark -- --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include "server/serving/variant_stats.h"

namespace twinserve {
namespace {

void BM_RecordRequest(benchmark::State& state) {
  VariantStats stats;
  RequestTiming t;
  t.total_ns = 1'200'000;
  t.queue_ns = 50'000;
  t.compute = {10'000, 900'000, 10'000};
  for (auto _ : state) {
    stats.AddInflight(1);
    stats.RecordSuccess(t);
    stats.RecordExecution(1, t.compute);
    stats.AddInflight(-1);
  }
}
BENCHMARK(BM_RecordRequest);
BENCHMARK(BM_RecordRequest)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace twinserve

BENCHMARK_MAIN();
