// Traffic policies: which variant answers a request that does not name one,
// which runs beside it for comparison, and how a rollout moves. Plain values
// with their validation and their stored (JSON) form; server/core holds each
// model's current policy and history, server/traffic/router.h decides per
// request.
#ifndef TWINSERVE_SERVER_TRAFFIC_POLICY_H_
#define TWINSERVE_SERVER_TRAFFIC_POLICY_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace twinserve {

enum class PolicyKind {
  kPinned,    // everything to `baseline`
  kWeighted,  // shares over variants; a routing key always lands the same
  kShadow,    // `baseline` answers; `candidate` also runs on a fraction of
              // requests, off the response path, and the outputs are compared
  kRollout,   // `candidate` gets steps[stage] percent of traffic; the
              // rollout controller advances stages while guards hold and
              // rolls back to `baseline` when one breaks
};

// Limits a rollout stage must stay within; 0 disables a guard.
struct RolloutGuards {
  double max_disagreement = 0.02;  // share of compared rows, top-1
  double min_cosine = 0.99;        // mean over compared requests
  double max_error_rate = 0.01;    // candidate's failed / all
  double max_p99_ratio = 2.0;      // candidate p99 / baseline p99
  int64_t min_samples = 20;        // before a guard may judge
};
const char* PolicyKindName(PolicyKind kind);
absl::StatusOr<PolicyKind> ParsePolicyKind(const std::string& name);

struct TrafficPolicy {
  PolicyKind kind = PolicyKind::kPinned;
  std::string baseline = "fp32";
  std::map<std::string, double> weights;  // kWeighted: variant -> share
  std::string candidate;                  // kShadow, kRollout
  double shadow_fraction = 1.0;           // kShadow: share of requests
  // kRollout
  std::vector<double> steps;      // percent of traffic to the candidate
  int stage = 0;                  // index into steps
  int64_t min_requests = 100;     // candidate requests before advancing
  double min_seconds = 10;        // and time at the stage
  double compare_fraction = 1.0;  // candidate requests also run on baseline
  RolloutGuards guards;
  // Bookkeeping, set by the registry.
  uint64_t version = 0;
  int64_t updated_unix_ms = 0;
  std::string author;
  std::string reason;
};

// One entry of a model's policy history.
struct PolicyChange {
  uint64_t version = 0;
  int64_t unix_ms = 0;
  std::string action;  // "set", "promote", "rollback", "reset"
  std::string actor;   // who: an operator name, or "guard:<name>"
  std::string reason;
  TrafficPolicy policy;
};

// INVALID_ARGUMENT unless the policy is well formed and names only
// variants in `variants`: a known baseline; weights only on a weighted
// policy, finite, non-negative, with a positive sum; fractions, rollout
// steps and guard thresholds in range and finite (a policy must survive its
// JSON round trip through the manifest).
absl::Status ValidatePolicy(const TrafficPolicy& policy,
                            const std::set<std::string>& variants);

// The share of traffic each variant gets under `policy` (sums to 1).
std::map<std::string, double> TrafficShares(const TrafficPolicy& policy);

std::string PolicyToJson(const TrafficPolicy& policy);
absl::StatusOr<TrafficPolicy> PolicyFromJson(const std::string& json);
std::string HistoryToJson(const std::vector<PolicyChange>& history);
absl::StatusOr<std::vector<PolicyChange>> HistoryFromJson(
    const std::string& json);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_TRAFFIC_POLICY_H_
