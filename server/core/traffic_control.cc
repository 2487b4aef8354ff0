#include "server/core/traffic_control.h"

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/common/logging.h"
#include "server/common/status_macros.h"
#include "server/traffic/history.h"

namespace twinserve {
namespace {

absl::Status MustExist(const ModelRecord& r) {
  if (r.revision == 0) {
    return absl::NotFoundError(
        absl::StrCat("model '", r.name, "' is not registered"));
  }
  return absl::OkStatus();
}

// The committed policy and history of `r` (defaults for parts that do not
// parse: the registry has logged them).
void ParsePolicy(const ModelRecord& r, TrafficPolicy* policy,
                 std::vector<PolicyChange>* history) {
  *policy = TrafficPolicy();
  history->clear();
  if (auto p = PolicyFromJson(r.policy_json);
      p.ok() && !r.policy_json.empty()) {
    *policy = *p;
  }
  if (auto h = HistoryFromJson(r.policy_history_json);
      h.ok() && !r.policy_history_json.empty()) {
    *history = *h;
  }
}

}  // namespace

TrafficControl::TrafficControl(ModelStore* store, ModelRegistry* registry)
    : store_(store), registry_(registry) {}

absl::StatusOr<TrafficPolicy> TrafficControl::Change(
    const std::string& name, const PolicyChangeBy& by,
    const std::function<absl::StatusOr<TrafficPolicy>(
        const TrafficPolicy&, const std::vector<PolicyChange>&)>& choose) {
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  TrafficPolicy written;
  UpdateOptions options;
  options.on_commit = [&](const ModelRecord& committed) {
    registry_->ApplyRecord(committed);
    registry_->RecordPolicyChange(name, by.action, by.actor);
  };
  // A rollback (the operator's or a guard's) must take effect even when the
  // disk refuses it: it is written later (FlushPending).
  options.keep_in_memory_if_disk_fails = by.action == "rollback";
  store_->FlushPending();
  auto committed = store_->Update(
      name,
      [&](ModelRecord* r, const std::vector<std::string>&) -> absl::Status {
        TS_RETURN_IF_ERROR(MustExist(*r));
        TrafficPolicy current;
        std::vector<PolicyChange> history;
        ParsePolicy(*r, &current, &history);
        if (by.expected_version.has_value() &&
            current.version != *by.expected_version) {
          return absl::AbortedError(absl::StrCat(
              "the traffic policy of '", name, "' moved on to version ",
              current.version, " (",
              current.reason.empty() ? "no reason" : current.reason,
              ") since version ", *by.expected_version,
              " was read; nothing was changed"));
        }
        TS_ASSIGN_OR_RETURN(TrafficPolicy next, choose(current, history));
        TS_RETURN_IF_ERROR(
            ValidatePolicy(next, registry_->ReadyVariants(name)));
        written = ApplyChange(current, next, by.action, by.actor, by.reason,
                              NowUnixMs(), &history);
        r->policy_json = PolicyToJson(written);
        r->policy_history_json = HistoryToJson(history);
        return absl::OkStatus();
      },
      options);
  if (!committed.ok()) return committed.status();
  TS_LOG(INFO) << "traffic policy of " << name << " v" << written.version
               << " (" << by.action << " by " << by.actor
               << "): " << PolicyKindName(written.kind) << " baseline "
               << written.baseline;
  return written;
}

absl::StatusOr<TrafficPolicy> TrafficControl::SetPolicy(
    const std::string& name, TrafficPolicy policy, const PolicyChangeBy& by) {
  return Change(name, by,
                [&](const TrafficPolicy&, const std::vector<PolicyChange>&) {
                  return policy;
                });
}

absl::StatusOr<TrafficPolicy> TrafficControl::Promote(
    const std::string& name, const std::string& variant, PolicyChangeBy by) {
  by.action = "promote";
  TrafficPolicy p;
  p.kind = PolicyKind::kPinned;
  p.baseline = variant;
  return SetPolicy(name, p, by);
}

absl::StatusOr<TrafficPolicy> TrafficControl::Rollback(const std::string& name,
                                                       PolicyChangeBy by) {
  by.action = "rollback";
  return Change(
      name, by,
      [&](const TrafficPolicy&, const std::vector<PolicyChange>& history) {
        return RollbackTarget(name, history);
      });
}

absl::StatusOr<BatchingPolicy> TrafficControl::SetBatching(
    const std::string& name, const std::string& variant, BatchingConfig config,
    bool clear) {
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  BatchingPolicy written;
  UpdateOptions options;
  options.on_commit = [&](const ModelRecord& committed) {
    registry_->ApplyRecord(committed);
  };
  auto committed = store_->Update(
      name,
      [&](ModelRecord* r, const std::vector<std::string>&) -> absl::Status {
        TS_RETURN_IF_ERROR(MustExist(*r));
        if (!variant.empty() && !r->variants.count(variant)) {
          return absl::NotFoundError(absl::StrCat(
              "model '", name, "' has no version '", variant, "'"));
        }
        BatchingPolicy batching;
        if (auto b = BatchingPolicyFromJson(r->batching_json); b.ok()) {
          batching = *b;
        }
        if (clear) {
          if (variant.empty()) {
            batching.defaults = BatchingConfig();
          } else {
            batching.per_variant.erase(variant);
          }
        } else {
          BatchingConfig c = config;
          TS_RETURN_IF_ERROR(ValidateBatching(r->signature, &c));
          if (variant.empty()) {
            batching.defaults = c;
          } else {
            batching.per_variant[variant] = c;
          }
        }
        r->batching_json = BatchingPolicyToJson(batching);
        written = batching;
        return absl::OkStatus();
      },
      options);
  if (!committed.ok()) return committed.status();
  TS_LOG(INFO) << "batching of " << name << ":"
               << (variant.empty() ? "*" : variant) << " is now max_batch_size "
               << written.For(variant).max_batch_size << ", delay "
               << written.For(variant).max_queue_delay_us << " us";
  return written;
}

}  // namespace twinserve
