#include "server/core/rollout_driver.h"

#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/logging.h"
#include "server/common/thread_name.h"

namespace twinserve {

RolloutDriver::RolloutDriver(const ModelRegistry* registry,
                             TrafficControl* traffic, int tick_ms,
                             RolloutFleet* fleet)
    : registry_(registry), traffic_(traffic), fleet_(fleet) {
  if (tick_ms <= 0) return;
  thread_ = std::thread([this, tick_ms] {
    SetThreadName("ts-rollout");
    while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(tick_ms))) {
      Tick();
    }
  });
}

RolloutDriver::~RolloutDriver() { Stop(); }

void RolloutDriver::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

RolloutCounters RolloutDriver::Read(const ModelView& view,
                                    const TrafficPolicy& p) const {
  RolloutCounters c;
  auto snapshot = [&](const std::string& variant) {
    auto it = view.stats.find(variant);
    return it == view.stats.end() ? StatsSnapshot() : it->second->Snapshot();
  };
  const StatsSnapshot cand = snapshot(p.candidate);
  const StatsSnapshot base = snapshot(p.baseline);
  c.candidate_success = cand.success.count;
  c.candidate_failed = cand.fail.count;
  c.agreements = cand.top1_agreements;
  c.disagreements = cand.top1_disagreements;
  c.cosine_sum = cand.cosine.sum;
  c.cosine_count = cand.cosine.count;
  c.bounds = cand.request_seconds.bounds;
  c.candidate_buckets = cand.request_seconds.cumulative;
  c.baseline_buckets = base.request_seconds.cumulative;
  return c;
}

std::vector<RolloutDriver::Plan> RolloutDriver::Judge() {
  absl::MutexLock lock(&mu_);
  struct Judged {
    std::string model;
    TrafficPolicy policy;
    Stage stage;
    RolloutCounters since;  // this replica's, since the stage began
  };
  std::vector<Judged> judged;
  std::map<std::string, std::pair<uint64_t, RolloutCounters>> mine;
  std::map<std::string, Stage> live;
  const int64_t now = NowUnixMs();
  for (const ModelView& view : registry_->Views()) {
    const TrafficPolicy& p = view.policy;
    if (p.kind != PolicyKind::kRollout || p.steps.empty()) continue;
    const std::string& name = view.status.name;
    auto it = stages_.find(name);
    if (it == stages_.end() || it->second.policy_version != p.version) {
      // A new stage (or a restart): count from now.
      live[name] = {p.version, now, Read(view, p)};
      mine[name] = {p.version,
                    CountersSince(live[name].start, live[name].start)};
      continue;
    }
    const Stage stage = it->second;
    live[name] = stage;
    RolloutCounters since = CountersSince(stage.start, Read(view, p));
    mine[name] = {p.version, since};
    judged.push_back({name, p, stage, std::move(since)});
  }
  stages_ = std::move(live);  // models that stopped rolling out are forgotten
  // In a fleet only the elected replica judges, on everyone's counters.
  if (fleet_ != nullptr && !fleet_->Share(mine)) return {};
  std::vector<Plan> plans;
  for (Judged& j : judged) {
    const RolloutCounters counters =
        fleet_ != nullptr ? fleet_->Sum(j.model, j.policy.version) : j.since;
    RolloutDecision d = JudgeStage(j.policy, RolloutCounters(), counters,
                                   (now - j.stage.started_ms) / 1000.0);
    if (d.kind != RolloutDecision::kHold) {
      plans.push_back({j.model, j.policy, std::move(d)});
    }
  }
  return plans;
}

std::vector<absl::Status> RolloutDriver::Apply(const std::vector<Plan>& plans) {
  std::vector<absl::Status> out;
  for (const Plan& plan : plans) {
    PolicyChangeBy by;
    by.action = plan.decision.action;
    by.actor = plan.decision.actor;
    by.reason = plan.decision.reason;
    by.expected_version = plan.judged.version;
    auto st = traffic_->SetPolicy(plan.model, plan.decision.next, by);
    if (plan.decision.kind == RolloutDecision::kRollback) {
      TS_LOG(WARNING) << plan.model << ": " << plan.decision.reason
                      << (st.ok() ? "" : " (not applied: ")
                      << (st.ok() ? "" : st.status().ToString())
                      << (st.ok() ? "" : ")");
    } else if (!st.ok()) {
      TS_LOG(INFO) << plan.model << ": rollout " << plan.decision.action
                   << " not applied: " << st.status();
    }
    out.push_back(st.status());
  }
  return out;
}

void RolloutDriver::Tick() {
  traffic_->FlushPending();
  Apply(Judge());
}

}  // namespace twinserve
