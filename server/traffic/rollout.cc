#include "server/traffic/rollout.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "server/common/quantile.h"

namespace twinserve {
namespace {

std::vector<uint64_t> Minus(std::vector<uint64_t> now,
                            const std::vector<uint64_t>& start) {
  for (size_t i = 0; i < now.size() && i < start.size(); ++i) {
    now[i] -= std::min(now[i], start[i]);
  }
  return now;
}

std::vector<uint64_t> Plus(std::vector<uint64_t> a,
                           const std::vector<uint64_t>& b) {
  if (a.size() < b.size()) a.resize(b.size());
  for (size_t i = 0; i < b.size(); ++i) a[i] += b[i];
  return a;
}

uint64_t Sub(uint64_t a, uint64_t b) { return a - std::min(a, b); }

}  // namespace

RolloutCounters CountersSince(const RolloutCounters& s,
                              const RolloutCounters& now) {
  RolloutCounters d;
  d.candidate_success = Sub(now.candidate_success, s.candidate_success);
  d.candidate_failed = Sub(now.candidate_failed, s.candidate_failed);
  d.agreements = Sub(now.agreements, s.agreements);
  d.disagreements = Sub(now.disagreements, s.disagreements);
  d.cosine_sum = std::max(0.0, now.cosine_sum - s.cosine_sum);
  d.cosine_count = Sub(now.cosine_count, s.cosine_count);
  d.bounds = now.bounds;
  d.candidate_buckets = Minus(now.candidate_buckets, s.candidate_buckets);
  d.baseline_buckets = Minus(now.baseline_buckets, s.baseline_buckets);
  return d;
}

void AddCounters(const RolloutCounters& part, RolloutCounters* sum) {
  sum->candidate_success += part.candidate_success;
  sum->candidate_failed += part.candidate_failed;
  sum->agreements += part.agreements;
  sum->disagreements += part.disagreements;
  sum->cosine_sum += part.cosine_sum;
  sum->cosine_count += part.cosine_count;
  if (sum->bounds.empty()) sum->bounds = part.bounds;
  if (part.bounds != sum->bounds) return;
  sum->candidate_buckets = Plus(sum->candidate_buckets, part.candidate_buckets);
  sum->baseline_buckets = Plus(sum->baseline_buckets, part.baseline_buckets);
}

RolloutDecision JudgeStage(const TrafficPolicy& p, const RolloutCounters& s,
                           const RolloutCounters& now, double held_seconds) {
  RolloutDecision d;
  const double ok = now.candidate_success - s.candidate_success;
  const double failed = now.candidate_failed - s.candidate_failed;
  const double disagree = now.disagreements - s.disagreements;
  const double compared = (now.agreements - s.agreements) + disagree;
  const double cos_n = now.cosine_count - s.cosine_count;
  const double cos_sum = now.cosine_sum - s.cosine_sum;
  const std::vector<uint64_t> cand =
      Minus(now.candidate_buckets, s.candidate_buckets);
  const std::vector<uint64_t> base =
      Minus(now.baseline_buckets, s.baseline_buckets);
  const RolloutGuards& g = p.guards;
  const double n = static_cast<double>(g.min_samples);
  const double pct = p.steps[std::min<size_t>(p.stage, p.steps.size() - 1)];
  std::string guard, why;
  if (g.max_disagreement > 0 && compared >= n && compared > 0 &&
      disagree / compared > g.max_disagreement) {
    guard = "disagreement";
    why = absl::StrFormat("top-1 disagreement %.2f%% > %.2f%% over %.0f rows",
                          100 * disagree / compared, 100 * g.max_disagreement,
                          compared);
  } else if (g.min_cosine > 0 && cos_n >= n && cos_n > 0 &&
             cos_sum / cos_n < g.min_cosine) {
    guard = "cosine";
    why = absl::StrFormat("mean cosine %.5f < %.5f over %.0f requests",
                          cos_sum / cos_n, g.min_cosine, cos_n);
  } else if (g.max_error_rate > 0 && ok + failed >= n && ok + failed > 0 &&
             failed / (ok + failed) > g.max_error_rate) {
    guard = "error_rate";
    why = absl::StrFormat("error rate %.2f%% > %.2f%% over %.0f requests",
                          100 * failed / (ok + failed), 100 * g.max_error_rate,
                          ok + failed);
  } else if (g.max_p99_ratio > 0 && !cand.empty() && !base.empty() &&
             cand.back() >= n && base.back() >= n && cand.back() > 0) {
    const double pc = QuantileFromBuckets(now.bounds, cand, 0.99);
    const double pb = QuantileFromBuckets(now.bounds, base, 0.99);
    if (pb > 0 && pc / pb > g.max_p99_ratio) {
      guard = "p99_ratio";
      why =
          absl::StrFormat("p99 %.3f ms vs baseline %.3f ms (ratio %.2f > %.2f)",
                          pc * 1e3, pb * 1e3, pc / pb, g.max_p99_ratio);
    }
  }
  if (!guard.empty()) {
    d.kind = RolloutDecision::kRollback;
    d.action = "rollback";
    d.actor = "guard:" + guard;
    d.reason = absl::StrFormat("rollout of %s stopped at stage %d (%.4g%%): %s",
                               p.candidate, p.stage + 1, pct, why);
    d.next.kind = PolicyKind::kPinned;
    d.next.baseline = p.baseline;
    return d;
  }
  if (ok < p.min_requests || held_seconds < p.min_seconds) return d;
  d.actor = "rollout";
  if (p.stage + 1 < static_cast<int>(p.steps.size())) {
    d.kind = RolloutDecision::kAdvance;
    d.action = "advance";
    d.next = p;
    d.next.stage = p.stage + 1;
    d.reason = absl::StrFormat(
        "stage %d (%.4g%%) held: %.0f requests, %.0f s, guards within "
        "limits; next %.4g%%",
        p.stage + 1, pct, ok, held_seconds, p.steps[d.next.stage]);
  } else {
    d.kind = RolloutDecision::kPromote;
    d.action = "promote";
    d.next.kind = PolicyKind::kPinned;
    d.next.baseline = p.candidate;
    d.reason = absl::StrFormat("rollout of %s complete", p.candidate);
  }
  return d;
}

}  // namespace twinserve
