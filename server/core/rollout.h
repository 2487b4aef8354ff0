// RolloutController: drives `rollout` traffic policies. Every tick it looks
// at each rolling-out model's current stage (counted from when the stage
// began): when a guard breaks (top-1 disagreement, mean cosine, error rate,
// p99 latency ratio, each judged only after min_samples) it rolls back to
// the baseline, recording the guard and the figures; when the stage has held
// for min_requests candidate requests and min_seconds it advances, and after
// the last step it promotes the candidate.
#ifndef TWINSERVE_SERVER_CORE_ROLLOUT_H_
#define TWINSERVE_SERVER_CORE_ROLLOUT_H_

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/core/metrics.h"
#include "server/core/registry.h"

namespace twinserve {

class RolloutController {
 public:
  // `registry` and `metrics` must outlive the controller.
  RolloutController(ModelRegistry* registry, Metrics* metrics,
                    int tick_ms = 250);
  ~RolloutController();

  // One evaluation of every model (the thread calls this each tick).
  void Tick();

 private:
  struct Counters {
    uint64_t success = 0, failed = 0;
    double agree = 0, disagree = 0, cosine_sum = 0, cosine_n = 0;
    std::vector<double> bounds;
    std::vector<uint64_t> candidate_buckets, baseline_buckets;
  };
  struct Stage {
    uint64_t policy_version = 0;
    int64_t started_ms = 0;
    Counters start;
  };
  Counters Read(const std::string& model, const TrafficPolicy& p) const;

  ModelRegistry* const registry_;
  Metrics* const metrics_;
  std::map<std::string, Stage> stages_;  // only touched by Tick()
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_ROLLOUT_H_
