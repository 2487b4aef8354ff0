#include "server/metrics/cluster_collector.h"

#include <string>
#include <vector>

#include "server/metrics/metric_family.h"

namespace twinserve {
namespace {

using prometheus::MetricFamily;

// 1 or 0 for this replica.
MetricFamily Gauge(const std::string& name, const std::string& help,
                   const std::string& replica, bool value) {
  return Single(name, help, prometheus::MetricType::Gauge,
                {{"replica", replica}}, value ? 1 : 0);
}

class ClusterCollector : public prometheus::Collectable {
 public:
  ClusterCollector(ModelStore* store, Fleet* fleet)
      : store_(store), fleet_(fleet) {}

  std::vector<MetricFamily> Collect() const override {
    const std::string& id = fleet_->replica_id();
    return {
        Gauge("twinserve_cluster_store_following",
              "1 while other replicas' writes reach this one (etcd watch "
              "connected)",
              id, store_->following()),
        Gauge("twinserve_cluster_session",
              "1 while this replica holds its etcd lease (job claims, "
              "statistics, leadership)",
              id, fleet_->session() != 0),
        Gauge("twinserve_cluster_leader",
              "1 if this replica runs the fleet's rollout controller", id,
              fleet_->leading()),
    };
  }

 private:
  ModelStore* const store_;
  Fleet* const fleet_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeClusterCollector(ModelStore* store,
                                                              Fleet* fleet) {
  return std::make_shared<ClusterCollector>(store, fleet);
}

}  // namespace twinserve
