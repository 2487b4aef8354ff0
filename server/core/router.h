// Traffic policies: which variant answers a request that does not name one.
// Pure functions over a policy snapshot; the registry holds the policy of
// each model and calls ChooseVariant under its lock.
#ifndef TWINSERVE_SERVER_CORE_ROUTER_H_
#define TWINSERVE_SERVER_CORE_ROUTER_H_

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
};
const char* PolicyKindName(PolicyKind kind);
absl::StatusOr<PolicyKind> ParsePolicyKind(const std::string& name);

struct TrafficPolicy {
  PolicyKind kind = PolicyKind::kPinned;
  std::string baseline = "fp32";
  std::map<std::string, double> weights;  // kWeighted: variant -> share
  std::string candidate;                  // kShadow
  double shadow_fraction = 1.0;           // kShadow: share of requests
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
// variants in `variants`: a known baseline, non-negative weights with a
// positive sum.
absl::Status ValidatePolicy(const TrafficPolicy& policy,
                            const std::set<std::string>& variants);

// The variant for one request. `routing_key` (may be empty) makes weighted
// routing sticky: the same key maps to the same variant while the policy
// stands. `uniform` in [0, 1) is used when there is no key.
std::string ChooseVariant(const TrafficPolicy& policy,
                          absl::string_view routing_key, double uniform);

// Whether this request (answered by `served`) should also run the shadow
// candidate. `uniform` in [0, 1).
bool ShouldShadow(const TrafficPolicy& policy, const std::string& served,
                  double uniform);

// The share of traffic each variant gets under `policy` (sums to 1).
std::map<std::string, double> TrafficShares(const TrafficPolicy& policy);

std::string PolicyToJson(const TrafficPolicy& policy);
absl::StatusOr<TrafficPolicy> PolicyFromJson(const std::string& json);
std::string HistoryToJson(const std::vector<PolicyChange>& history);
absl::StatusOr<std::vector<PolicyChange>> HistoryFromJson(
    const std::string& json);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_ROUTER_H_
