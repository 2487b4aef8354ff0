#include "server/core/rollout_driver.h"

#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/common/logging.h"
#include "server/common/thread_name.h"

namespace twinserve {

RolloutDriver::RolloutDriver(const ModelRegistry* registry,
                             TrafficControl* traffic, int tick_ms)
    : registry_(registry), traffic_(traffic) {
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
  std::vector<Plan> plans;
  std::map<std::string, Stage> live;
  const int64_t now = NowUnixMs();
  for (const ModelView& view : registry_->Views()) {
    const TrafficPolicy& p = view.policy;
    if (p.kind != PolicyKind::kRollout || p.steps.empty()) continue;
    auto it = stages_.find(view.status.name);
    if (it == stages_.end() || it->second.policy_version != p.version) {
      // A new stage (or a restart): count from now.
      live[view.status.name] = {p.version, now, Read(view, p)};
      continue;
    }
    const Stage stage = it->second;
    live[view.status.name] = stage;
    RolloutDecision d = JudgeStage(p, stage.start, Read(view, p),
                                   (now - stage.started_ms) / 1000.0);
    if (d.kind != RolloutDecision::kHold) {
      plans.push_back({view.status.name, p, std::move(d)});
    }
  }
  stages_ = std::move(live);  // models that stopped rolling out are forgotten
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
