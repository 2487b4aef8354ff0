// FleetRollouts: the rollout driver's view of a fleet (RolloutFleet over
// server/cluster/fleet.h). Every replica shares its per-stage counters as
// one small JSON value under its etcd session (so a dead replica's vanish
// with it); the replica holding the fleet's leadership sums them and
// judges. A replica's counters start at zero when it sees a stage begin,
// so the sum never counts a request twice and a restarted replica only
// adds what it served since.
#ifndef TWINSERVE_SERVER_CORE_FLEET_ROLLOUTS_H_
#define TWINSERVE_SERVER_CORE_FLEET_ROLLOUTS_H_

#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/cluster/fleet.h"
#include "server/core/rollout_driver.h"

namespace twinserve {

class FleetRollouts : public RolloutFleet {
 public:
  explicit FleetRollouts(Fleet* fleet) : fleet_(fleet) {}

  bool Share(const std::map<std::string, std::pair<uint64_t, RolloutCounters>>&
                 mine) override;
  RolloutCounters Sum(const std::string& model,
                      uint64_t policy_version) override;

  // The JSON one replica shares, and back (false if malformed).
  static std::string Encode(
      const std::map<std::string, std::pair<uint64_t, RolloutCounters>>& m);
  static bool Decode(
      const std::string& text,
      std::map<std::string, std::pair<uint64_t, RolloutCounters>>* m);

 private:
  Fleet* const fleet_;
  absl::Mutex mu_;
  // The fleet's sums as of the last Share that led, by (model, version).
  std::map<std::pair<std::string, uint64_t>, RolloutCounters> sums_
      ABSL_GUARDED_BY(mu_);
  // What was last written, and under which session: unchanged counters
  // are not written again (an idle fleet writes nothing to etcd).
  std::string published_ ABSL_GUARDED_BY(mu_);
  int64_t published_session_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_FLEET_ROLLOUTS_H_
