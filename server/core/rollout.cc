#include "server/core/rollout.h"

#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "server/core/logging.h"
#include "server/core/quantile.h"
#include "server/core/store.h"
#include "server/core/thread_pool.h"

namespace twinserve {

RolloutController::RolloutController(ModelRegistry* registry, Metrics* metrics,
                                     int tick_ms)
    : registry_(registry), metrics_(metrics) {
  thread_ = std::thread([this, tick_ms] {
    SetThreadName("ts-rollout");
    while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(tick_ms))) {
      Tick();
    }
  });
}

RolloutController::~RolloutController() {
  stop_.Notify();
  thread_.join();
}

RolloutController::Counters RolloutController::Read(
    const std::string& model, const TrafficPolicy& p) const {
  Counters c;
  for (const auto& e : registry_->Stats(model, p.candidate)) {
    c.success = e.stats.success.count;
    c.failed = e.stats.fail.count;
  }
  if (Metrics::Drift* d = metrics_->FindDrift(model, p.candidate)) {
    c.agree = d->agreements->Value();
    c.disagree = d->disagreements->Value();
    const auto h = d->cosine->Collect().histogram;
    c.cosine_sum = h.sample_sum;
    c.cosine_n = static_cast<double>(h.sample_count);
  }
  auto buckets = [&](const std::string& variant, std::vector<uint64_t>* out) {
    const auto h =
        metrics_->ForVariant(model, variant)->request_seconds->Collect();
    c.bounds.clear();
    for (const auto& b : h.histogram.bucket) {
      c.bounds.push_back(b.upper_bound);
      out->push_back(b.cumulative_count);
    }
  };
  buckets(p.candidate, &c.candidate_buckets);
  buckets(p.baseline, &c.baseline_buckets);
  return c;
}

void RolloutController::Tick() {
  for (const ModelStatus& m : registry_->List()) {
    auto policy = registry_->GetPolicy(m.name);
    if (!policy.ok() || policy->kind != PolicyKind::kRollout) {
      stages_.erase(m.name);
      continue;
    }
    const TrafficPolicy& p = *policy;
    auto it = stages_.find(m.name);
    if (it == stages_.end() || it->second.policy_version != p.version) {
      // A new stage (or a restart): count from now.
      stages_[m.name] = {p.version, NowUnixMs(), Read(m.name, p)};
      continue;
    }
    const Stage& stage = it->second;
    const Counters now = Read(m.name, p);
    const Counters& s = stage.start;
    const double ok = now.success - s.success;
    const double failed = now.failed - s.failed;
    const double compared = (now.agree - s.agree) + (now.disagree - s.disagree);
    const double cos_n = now.cosine_n - s.cosine_n;
    std::vector<uint64_t> cand = now.candidate_buckets,
                          base = now.baseline_buckets;
    for (size_t i = 0; i < cand.size() && i < s.candidate_buckets.size(); ++i) {
      cand[i] -= s.candidate_buckets[i];
    }
    for (size_t i = 0; i < base.size() && i < s.baseline_buckets.size(); ++i) {
      base[i] -= s.baseline_buckets[i];
    }
    const RolloutGuards& g = p.guards;
    const double n = static_cast<double>(g.min_samples);
    std::string guard, why;
    const double pct = p.steps[std::min<size_t>(p.stage, p.steps.size() - 1)];
    if (g.max_disagreement > 0 && compared >= n &&
        (now.disagree - s.disagree) / compared > g.max_disagreement) {
      guard = "disagreement";
      why = absl::StrFormat("top-1 disagreement %.2f%% > %.2f%% over %.0f rows",
                            100 * (now.disagree - s.disagree) / compared,
                            100 * g.max_disagreement, compared);
    } else if (g.min_cosine > 0 && cos_n >= n &&
               (now.cosine_sum - s.cosine_sum) / cos_n < g.min_cosine) {
      guard = "cosine";
      why = absl::StrFormat("mean cosine %.5f < %.5f over %.0f requests",
                            (now.cosine_sum - s.cosine_sum) / cos_n,
                            g.min_cosine, cos_n);
    } else if (g.max_error_rate > 0 && ok + failed >= n &&
               failed / (ok + failed) > g.max_error_rate) {
      guard = "error_rate";
      why = absl::StrFormat("error rate %.2f%% > %.2f%% over %.0f requests",
                            100 * failed / (ok + failed),
                            100 * g.max_error_rate, ok + failed);
    } else if (g.max_p99_ratio > 0 && !cand.empty() && !base.empty() &&
               cand.back() >= n && base.back() >= n) {
      const double pc = QuantileFromBuckets(now.bounds, cand, 0.99);
      const double pb = QuantileFromBuckets(now.bounds, base, 0.99);
      if (pb > 0 && pc / pb > g.max_p99_ratio) {
        guard = "p99_ratio";
        why = absl::StrFormat(
            "p99 %.3f ms vs baseline %.3f ms (ratio %.2f > "
            "%.2f)",
            pc * 1e3, pb * 1e3, pc / pb, g.max_p99_ratio);
      }
    }
    if (!guard.empty()) {
      TrafficPolicy back;
      back.kind = PolicyKind::kPinned;
      back.baseline = p.baseline;
      const std::string reason =
          absl::StrFormat("rollout of %s stopped at stage %d (%.4g%%): %s",
                          p.candidate, p.stage + 1, pct, why);
      auto st = registry_->SetPolicy(m.name, back, "rollback", "guard:" + guard,
                                     reason);
      TS_LOG(WARNING) << m.name << ": " << reason
                      << (st.ok() ? "" : " (rollback failed!)");
      continue;
    }
    const double held_s = (NowUnixMs() - stage.started_ms) / 1000.0;
    if (ok >= p.min_requests && held_s >= p.min_seconds) {
      if (p.stage + 1 < static_cast<int>(p.steps.size())) {
        TrafficPolicy next = p;
        next.stage = p.stage + 1;
        registry_
            ->SetPolicy(m.name, next, "advance", "rollout",
                        absl::StrFormat("stage %d (%.4g%%) held: %.0f "
                                        "requests, %.0f s, guards within "
                                        "limits; next %.4g%%",
                                        p.stage + 1, pct, ok, held_s,
                                        p.steps[next.stage]))
            .IgnoreError();
      } else {
        TrafficPolicy done;
        done.kind = PolicyKind::kPinned;
        done.baseline = p.candidate;
        registry_
            ->SetPolicy(m.name, done, "promote", "rollout",
                        absl::StrFormat("rollout of %s complete", p.candidate))
            .IgnoreError();
      }
    }
  }
}

}  // namespace twinserve
