// The per-request cost that routing and metrics add on the request path,
// in process and precise (the end-to-end difference is below the noise of
// two servers on a shared 2-core machine):
//   bazel run //server/core:routing_benchmark -- --benchmark_repetitions=5
#include <benchmark/benchmark.h>

#include "server/core/metrics.h"
#include "server/core/router.h"

namespace twinserve {
namespace {

void BM_ChooseVariantWeightedWithKey(benchmark::State& state) {
  TrafficPolicy p;
  p.kind = PolicyKind::kWeighted;
  p.weights = {{"fp32", 90}, {"int8", 10}};
  int i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        ChooseVariant(p, "user-12345", (i++ % 100) / 100.0));
  }
}
BENCHMARK(BM_ChooseVariantWeightedWithKey);

// What the engine does per successful request with metrics on.
void BM_MetricsPerRequest(benchmark::State& state) {
  Metrics metrics;
  for (auto _ : state) {
    Metrics::Variant* m = metrics.ForVariant("fashion", "int8");
    m->inflight->Increment();
    m->success->Increment();
    m->request_seconds->Observe(0.0012);
    m->queue_seconds->Observe(0.00005);
    m->compute_seconds->Observe(0.0009);
    m->batch_size->Observe(1);
    m->inflight->Decrement();
  }
}
BENCHMARK(BM_MetricsPerRequest);

}  // namespace
}  // namespace twinserve

BENCHMARK_MAIN();
