// TrafficControl: the writes that move traffic (policy set, promote,
// rollback, a rollout's advance) and change batching. Each is one
// read-modify-write of the model's record (compare-and-set in the store),
// computed from the policy and history as committed, so two operators, or an
// operator and the rollout driver, never overwrite each other. A writer
// that decided from what it saw earlier names that policy version and is
// refused (ABORTED) if the policy moved meanwhile.
#ifndef TWINSERVE_SERVER_CORE_TRAFFIC_CONTROL_H_
#define TWINSERVE_SERVER_CORE_TRAFFIC_CONTROL_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/registry.h"
#include "server/serving/batching.h"
#include "server/store/model_store.h"
#include "server/traffic/policy.h"

namespace twinserve {

// Who changes a policy and why, as the history records it.
struct PolicyChangeBy {
  // "set", "promote", "rollback", "advance".
  std::string action = "set";
  // An operator's name, "rollout", or "guard:<name>".
  std::string actor = "operator";
  std::string reason;
  // When set, the change applies only if the current policy is still this
  // version; ABORTED otherwise.
  std::optional<uint64_t> expected_version;
};

class TrafficControl {
 public:
  // Both must outlive this.
  TrafficControl(ModelStore* store, ModelRegistry* registry);

  // Writes policy changes that took effect in memory only (a rollback the
  // disk refused); the rollout driver calls it every tick.
  void FlushPending() { store_->FlushPending(); }

  // Validates `policy` against the model's ready variants, makes it the next
  // version and appends it to the history; both are stored before it takes
  // effect. Errors: UNAVAILABLE (still loading), NOT_FOUND,
  // INVALID_ARGUMENT (ValidatePolicy), ABORTED (expected version moved),
  // storage errors.
  absl::StatusOr<TrafficPolicy> SetPolicy(const std::string& name,
                                          TrafficPolicy policy,
                                          const PolicyChangeBy& by);
  // All traffic to `variant`.
  absl::StatusOr<TrafficPolicy> Promote(const std::string& name,
                                        const std::string& variant,
                                        PolicyChangeBy by);
  // Back to the policy before the current one, at once.
  // FAILED_PRECONDITION when there is none.
  absl::StatusOr<TrafficPolicy> Rollback(const std::string& name,
                                         PolicyChangeBy by);

  // Changes the dynamic batching settings of `variant`, or with an empty
  // variant the model's default (for variants without their own); `clear`
  // drops a variant's own settings. Stored before it takes effect; requests
  // already queued finish under the old settings.
  // Errors: NOT_FOUND (model, variant), INVALID_ARGUMENT (values),
  // FAILED_PRECONDITION (the model is not batchable).
  absl::StatusOr<BatchingPolicy> SetBatching(const std::string& name,
                                             const std::string& variant,
                                             BatchingConfig config, bool clear);

 private:
  // The one policy write: `choose` picks the next policy from the current
  // one and the history as committed.
  absl::StatusOr<TrafficPolicy> Change(
      const std::string& name, const PolicyChangeBy& by,
      const std::function<absl::StatusOr<TrafficPolicy>(
          const TrafficPolicy& current,
          const std::vector<PolicyChange>& history)>& choose);

  ModelStore* const store_;
  ModelRegistry* const registry_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_TRAFFIC_CONTROL_H_
