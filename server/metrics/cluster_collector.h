// Fleet metrics of a replica (server/cluster), read at scrape time without
// calling etcd: whether its store follows etcd's changes, whether it holds
// an etcd session, whether it leads (runs the fleet's rollout controller).
// Each series carries the replica's id, so Prometheus can tell replicas
// apart when a pod label is missing.
#ifndef TWINSERVE_SERVER_METRICS_CLUSTER_COLLECTOR_H_
#define TWINSERVE_SERVER_METRICS_CLUSTER_COLLECTOR_H_

#include <prometheus/collectable.h>

#include <memory>

#include "server/cluster/fleet.h"
#include "server/store/model_store.h"

namespace twinserve {

// Both must outlive the collector.
std::shared_ptr<prometheus::Collectable> MakeClusterCollector(ModelStore* store,
                                                              Fleet* fleet);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_METRICS_CLUSTER_COLLECTOR_H_
