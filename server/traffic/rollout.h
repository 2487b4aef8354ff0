// Rollout judgement: whether a `rollout` policy's current stage holds,
// advances, completes or is rolled back, from the candidate's and the
// baseline's statistics over the stage. A pure function: the rollout driver
// (server/core) reads the statistics and writes the decision with a
// compare-and-set on the policy version it judged.
//
// Guards (each judged only after min_samples, 0 turns one off): top-1
// disagreement, mean cosine, error rate, p99 latency ratio. A stage advances
// after min_requests candidate requests and min_seconds; after the last
// step the candidate is promoted.
#ifndef TWINSERVE_SERVER_TRAFFIC_ROLLOUT_H_
#define TWINSERVE_SERVER_TRAFFIC_ROLLOUT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "server/traffic/policy.h"

namespace twinserve {

// Cumulative statistics at one moment; a stage is judged on the
// difference between now and its start.
struct RolloutCounters {
  uint64_t candidate_success = 0;
  uint64_t candidate_failed = 0;
  // Comparisons of the candidate with the baseline.
  uint64_t agreements = 0;
  uint64_t disagreements = 0;
  double cosine_sum = 0;
  uint64_t cosine_count = 0;
  // Request latency histograms (same bounds, cumulative counts).
  std::vector<double> bounds;
  std::vector<uint64_t> candidate_buckets;
  std::vector<uint64_t> baseline_buckets;
};

// `now` - `start`, counter by counter (never below zero), for a stage's
// counts since it began.
RolloutCounters CountersSince(const RolloutCounters& start,
                              const RolloutCounters& now);
// Adds `part` to `sum` (a fleet's counters; histograms with other bounds
// than `sum`'s are skipped).
void AddCounters(const RolloutCounters& part, RolloutCounters* sum);

struct RolloutDecision {
  enum Kind { kHold, kAdvance, kPromote, kRollback };
  Kind kind = kHold;
  std::string action;  // "advance", "promote", "rollback"
  std::string actor;   // "rollout", or "guard:<name>" for a rollback
  std::string reason;  // with the figures that decided
  TrafficPolicy next;  // the policy to write, unless kHold
};

// REQUIRES: policy.kind == kRollout with steps (ValidatePolicy).
RolloutDecision JudgeStage(const TrafficPolicy& policy,
                           const RolloutCounters& stage_start,
                           const RolloutCounters& now, double held_seconds);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_TRAFFIC_ROLLOUT_H_
