// RolloutDriver: runs `rollout` traffic policies. Every tick it judges each
// rolling-out model's current stage (server/traffic/rollout.h) from the
// core's live statistics, counted from when the stage began, and writes the
// decision (advance, promote, rollback by a guard) through TrafficControl
// with a compare-and-set on the policy version it judged: a change an
// operator made meanwhile (a rollback at 3 a.m.) is never undone.
#ifndef TWINSERVE_SERVER_CORE_ROLLOUT_DRIVER_H_
#define TWINSERVE_SERVER_CORE_ROLLOUT_DRIVER_H_

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/core/registry.h"
#include "server/core/traffic_control.h"
#include "server/traffic/rollout.h"

namespace twinserve {

// The rollout statistics of the other replicas of a fleet
// (server/core/fleet_rollouts.h), so that one replica judges each stage on
// the whole fleet's traffic.
class RolloutFleet {
 public:
  virtual ~RolloutFleet() = default;
  // Shares this replica's counters for each rolling-out model's stage (by
  // policy version), counted from when this replica saw the stage begin;
  // returns whether this replica judges for the fleet now.
  virtual bool Share(
      const std::map<std::string, std::pair<uint64_t, RolloutCounters>>&
          mine) = 0;
  // The fleet's counters for `model`'s stage at `policy_version`, summed
  // over the replicas that shared them (this one included).
  virtual RolloutCounters Sum(const std::string& model,
                              uint64_t policy_version) = 0;
};

class RolloutDriver {
 public:
  // What one tick decided for one model, from the policy version it read.
  struct Plan {
    std::string model;
    TrafficPolicy judged;  // the policy as read, with its version
    RolloutDecision decision;
  };

  // Both must outlive the driver. `tick_ms` 0: no thread (tests call Tick
  // or Judge and Apply themselves).
  // With `fleet` (may be null; must outlive the driver), stages are judged
  // on the fleet's counters, and only by the replica the fleet elects.
  RolloutDriver(const ModelRegistry* registry, TrafficControl* traffic,
                int tick_ms = 250, RolloutFleet* fleet = nullptr);
  // Stop(), if not done yet.
  ~RolloutDriver();
  // Stops and joins the thread.
  void Stop();

  // One evaluation of every model: Apply(Judge()).
  void Tick();
  // Judges every rolling-out model; decisions that hold are not returned.
  std::vector<Plan> Judge();
  // Writes each plan's decision, only if its model's policy is still the
  // version that was judged. Returns what each write answered.
  std::vector<absl::Status> Apply(const std::vector<Plan>& plans);

 private:
  struct Stage {
    uint64_t policy_version = 0;
    int64_t started_ms = 0;
    RolloutCounters start;
  };
  RolloutCounters Read(const ModelView& view, const TrafficPolicy& p) const;

  const ModelRegistry* const registry_;
  TrafficControl* const traffic_;
  RolloutFleet* const fleet_;
  absl::Mutex mu_;  // one Judge at a time
  std::map<std::string, Stage> stages_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_ROLLOUT_DRIVER_H_
