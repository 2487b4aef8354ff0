// TrafficPlan: a traffic policy waiting for a variant that does not exist
// yet (the one a registration's quantization job is making). It is stored
// in the model's record with the registration and applied in the same
// durable write that publishes the variant, so a crash never leaves a
// published variant without its plan nor a plan on a missing variant.
#ifndef TWINSERVE_SERVER_TRAFFIC_PLAN_H_
#define TWINSERVE_SERVER_TRAFFIC_PLAN_H_

#include <string>

#include "absl/status/statusor.h"
#include "server/traffic/policy.h"

namespace twinserve {

struct TrafficPlan {
  std::string id;       // ties the plan to the job that may apply it
  std::string variant;  // applied when this variant is published
  TrafficPolicy policy;
  std::string author;
  // The policy version the registration left. If an operator moves traffic
  // before the variant is ready, the plan is dropped, not applied over
  // their change (compare-and-set, as every policy write).
  uint64_t base_version = 0;
};

// Fills a plan's policy defaults: candidate = the variant, baseline fp32
// (and, for weighted policies, nothing). INVALID_ARGUMENT unless the policy
// is well formed for the variants {fp32, variant} (ValidatePolicy).
absl::Status CompletePlan(TrafficPlan* plan);

std::string PlanToJson(const TrafficPlan& plan);
absl::StatusOr<TrafficPlan> PlanFromJson(const std::string& json);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_TRAFFIC_PLAN_H_
