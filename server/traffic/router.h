// Router: the routing decision for one request under a policy snapshot, as
// pure functions. The registry calls Decide once per request, under its
// lock, with one random draw: which variant answers and which (if any) runs
// beside it for comparison come from the same policy version.
#ifndef TWINSERVE_SERVER_TRAFFIC_ROUTER_H_
#define TWINSERVE_SERVER_TRAFFIC_ROUTER_H_

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "server/traffic/policy.h"

namespace twinserve {

// The variant for one request. `routing_key` (may be empty) makes weighted
// routing sticky: the same key maps to the same variant while the policy
// stands. `uniform` in [0, 1) is used when there is no key.
std::string ChooseVariant(const TrafficPolicy& policy,
                          absl::string_view routing_key, double uniform);

// Whether this request (answered by `served`) should also run another
// variant for comparison: the shadow candidate (kShadow, served by the
// baseline) or the baseline (kRollout, served by the candidate). Sets
// `other` to the variant to run. `uniform` in [0, 1).
bool ShouldCompare(const TrafficPolicy& policy, const std::string& served,
                   double uniform, std::string* other);

struct Route {
  std::string served;
  // The variant to run beside it for comparison (shadow candidate, or a
  // rollout's baseline); empty for none.
  std::string compare;
  // Which of the two is the baseline of the comparison.
  bool served_is_baseline = true;
};

// The whole decision for one request from one 64-bit random `draw`.
Route Decide(const TrafficPolicy& policy, absl::string_view routing_key,
             uint64_t draw);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_TRAFFIC_ROUTER_H_
