#include "server/traffic/history.h"

#include "absl/strings/str_cat.h"

namespace twinserve {

TrafficPolicy ApplyChange(const TrafficPolicy& current, TrafficPolicy next,
                          const std::string& action, const std::string& actor,
                          const std::string& reason, int64_t now_unix_ms,
                          std::vector<PolicyChange>* history) {
  next.version = current.version + 1;
  next.updated_unix_ms = now_unix_ms;
  next.author = actor;
  next.reason = reason;
  history->push_back({next.version, now_unix_ms, action, actor, reason, next});
  if (history->size() > kMaxHistory) {
    history->erase(history->begin(),
                   history->begin() + (history->size() - kMaxHistory));
  }
  return next;
}

absl::StatusOr<TrafficPolicy> RollbackTarget(
    const std::string& model, const std::vector<PolicyChange>& history) {
  if (history.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "model '", model, "' has no earlier traffic policy to roll back to"));
  }
  if (history.size() == 1) return TrafficPolicy();  // pinned to fp32
  return history[history.size() - 2].policy;
}

}  // namespace twinserve
