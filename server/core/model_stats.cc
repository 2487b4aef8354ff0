#include "server/core/model_stats.h"

#include "server/common/clock.h"

namespace twinserve {

absl::StatusOr<ModelSnapshot> SnapshotModel(const ModelRegistry& registry,
                                            const std::string& model) {
  auto view = registry.View(model);
  if (!view.ok()) return view.status();
  ModelSnapshot snap;
  snap.model = model;
  snap.policy = view->policy;
  snap.unix_ms = NowUnixMs();
  const auto shares = TrafficShares(view->policy);
  for (const VariantStatus& v : view->status.variants) {
    VariantSnapshot s;
    s.variant = v.name;
    s.ready = v.state == VariantState::kReady;
    if (auto it = shares.find(v.name); it != shares.end()) {
      s.traffic_share = it->second;
    }
    if (auto it = view->stats.find(v.name); it != view->stats.end()) {
      const StatsSnapshot st = it->second->Snapshot();
      s.requests = st.success.count;
      s.errors = st.fail.count;
      s.latency_sum_seconds = st.request_seconds.sum;
      s.bucket_bounds = st.request_seconds.bounds;
      s.bucket_counts = st.request_seconds.cumulative;
      s.shadow_runs = st.comparisons;
      s.shadow_drops = st.comparison_drops;
      s.top1_agreements = st.top1_agreements;
      s.top1_disagreements = st.top1_disagreements;
      s.cosine_sum = st.cosine.sum;
      s.cosine_count = st.cosine.count;
      s.max_abs_error_sum = st.max_abs_error.sum;
    }
    snap.variants.push_back(std::move(s));
  }
  return snap;
}

}  // namespace twinserve
