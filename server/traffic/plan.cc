#include "server/traffic/plan.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace twinserve {

absl::Status CompletePlan(TrafficPlan* plan) {
  TrafficPolicy& p = plan->policy;
  if (p.baseline.empty()) p.baseline = "fp32";
  if (p.candidate.empty() &&
      (p.kind == PolicyKind::kShadow || p.kind == PolicyKind::kRollout)) {
    p.candidate = plan->variant;
  }
  absl::Status st = ValidatePolicy(p, {"fp32", plan->variant});
  if (!st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the traffic plan for '", plan->variant,
                     "' is not valid: ", st.message()));
  }
  return absl::OkStatus();
}

std::string PlanToJson(const TrafficPlan& plan) {
  nlohmann::json j{{"id", plan.id},
                   {"variant", plan.variant},
                   {"policy", PolicyToJson(plan.policy)},
                   {"author", plan.author},
                   {"base_version", plan.base_version}};
  return j.dump();
}

absl::StatusOr<TrafficPlan> PlanFromJson(const std::string& text) {
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    TrafficPlan plan;
    plan.id = j.at("id").get<std::string>();
    plan.variant = j.at("variant").get<std::string>();
    plan.author = j.value("author", std::string());
    plan.base_version = j.value("base_version", uint64_t{0});
    auto policy = PolicyFromJson(j.at("policy").get<std::string>());
    if (!policy.ok()) return policy.status();
    plan.policy = *policy;
    return plan;
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("a stored traffic plan does not parse: ", e.what()));
  }
}

}  // namespace twinserve
