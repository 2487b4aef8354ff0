#include "server/core/model_stats.h"

#include <limits>

#include "server/core/store.h"

namespace twinserve {

absl::StatusOr<ModelSnapshot> SnapshotModel(const ModelRegistry& registry,
                                            Metrics* metrics,
                                            const std::string& model) {
  auto status = registry.Get(model);
  if (!status.ok()) return status.status();
  auto policy = registry.GetPolicy(model);
  if (!policy.ok()) return policy.status();
  ModelSnapshot snap;
  snap.model = model;
  snap.policy = *policy;
  snap.unix_ms = NowUnixMs();
  const auto shares = TrafficShares(*policy);
  std::map<std::string, StatsSnapshot> stats;
  for (auto& e : registry.Stats(model, "")) stats[e.variant] = e.stats;
  for (const VariantStatus& v : status->variants) {
    VariantSnapshot s;
    s.variant = v.name;
    s.ready = v.state == VariantState::kReady;
    const StatsSnapshot& st = stats[v.name];
    s.requests = st.success.count;
    s.errors = st.fail.count;
    if (auto it = shares.find(v.name); it != shares.end()) {
      s.traffic_share = it->second;
    }
    if (metrics != nullptr) {
      Metrics::Variant* m = metrics->ForVariant(model, v.name);
      const prometheus::ClientMetric h = m->request_seconds->Collect();
      s.latency_sum_seconds = h.histogram.sample_sum;
      for (const auto& b : h.histogram.bucket) {
        s.bucket_bounds.push_back(b.upper_bound);
        s.bucket_counts.push_back(b.cumulative_count);
      }
      Metrics::Drift* d = metrics->FindDrift(model, v.name);
      if (d == nullptr) {
        snap.variants.push_back(std::move(s));
        continue;
      }
      s.shadow_runs = static_cast<uint64_t>(d->runs->Value());
      s.shadow_drops = static_cast<uint64_t>(d->drops->Value());
      s.top1_agreements = static_cast<uint64_t>(d->agreements->Value());
      s.top1_disagreements = static_cast<uint64_t>(d->disagreements->Value());
      const prometheus::ClientMetric c = d->cosine->Collect();
      s.cosine_sum = c.histogram.sample_sum;
      s.cosine_count = c.histogram.sample_count;
      s.max_abs_error_sum = d->max_abs_error->Collect().histogram.sample_sum;
    }
    snap.variants.push_back(std::move(s));
  }
  return snap;
}

}  // namespace twinserve
