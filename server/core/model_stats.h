// A per-variant snapshot of one model for live comparison (GetModelStats,
// twinctl compare): cumulative counts, latency histogram buckets, traffic
// share and drift against the baseline, all from the core's own statistics
// (never from Prometheus: /metrics may be off). Cumulative, so a client that
// takes two snapshots gets exact windowed rates and quantiles from the
// difference.
#ifndef TWINSERVE_SERVER_CORE_MODEL_STATS_H_
#define TWINSERVE_SERVER_CORE_MODEL_STATS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/core/registry.h"

namespace twinserve {

struct VariantSnapshot {
  std::string variant;
  bool ready = false;
  uint64_t requests = 0;  // successful
  uint64_t errors = 0;
  double latency_sum_seconds = 0;
  std::vector<double> bucket_bounds;    // upper bounds, +Inf last
  std::vector<uint64_t> bucket_counts;  // cumulative
  double traffic_share = 0;
  uint64_t shadow_runs = 0;
  uint64_t shadow_drops = 0;
  uint64_t top1_agreements = 0;
  uint64_t top1_disagreements = 0;
  double cosine_sum = 0;
  uint64_t cosine_count = 0;
  double max_abs_error_sum = 0;
};

struct ModelSnapshot {
  std::string model;
  TrafficPolicy policy;
  int64_t unix_ms = 0;
  std::vector<VariantSnapshot> variants;
};

absl::StatusOr<ModelSnapshot> SnapshotModel(const ModelRegistry& registry,
                                            const std::string& model);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_MODEL_STATS_H_
