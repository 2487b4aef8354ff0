// A model's policy history: every change (set, promote, rollback, advance,
// reset), bounded, and what a rollback returns to. Pure functions; the
// registry applies them inside its compare-and-set writes.
#ifndef TWINSERVE_SERVER_TRAFFIC_HISTORY_H_
#define TWINSERVE_SERVER_TRAFFIC_HISTORY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/traffic/policy.h"

namespace twinserve {

// Changes kept per model; older ones are dropped.
inline constexpr size_t kMaxHistory = 200;

// Makes `next` the policy after `current`: the next version, stamped with
// `now`, `actor` and `reason`, and appends it to `history` as `action`.
TrafficPolicy ApplyChange(const TrafficPolicy& current, TrafficPolicy next,
                          const std::string& action, const std::string& actor,
                          const std::string& reason, int64_t now_unix_ms,
                          std::vector<PolicyChange>* history);

// The policy before the current one: the previous entry of `history`, or
// the default (pinned to fp32) when the current one is the first.
// FAILED_PRECONDITION naming `model` when there is no history.
absl::StatusOr<TrafficPolicy> RollbackTarget(
    const std::string& model, const std::vector<PolicyChange>& history);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_TRAFFIC_HISTORY_H_
