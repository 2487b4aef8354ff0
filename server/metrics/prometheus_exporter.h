// Prometheus export of what the core measures. At scrape time it reads the
// registry's model views (each variant's live statistics, policy, sizes,
// events) and the engine's unrouted failures and formats them as metric
// families; it keeps no series of its own, so an unregistered model leaves
// nothing behind, and nothing on the request path touches Prometheus.
//
// Names: twinserve_*, base units, counters end in _total; labels model and
// variant (plus code on outcomes, action/reason on policy changes, outcome
// on jobs). Requests that never reached a model (unknown model or version)
// are counted by code only: client text never becomes a label value.
#ifndef TWINSERVE_SERVER_METRICS_PROMETHEUS_EXPORTER_H_
#define TWINSERVE_SERVER_METRICS_PROMETHEUS_EXPORTER_H_

#include <prometheus/collectable.h>

#include <memory>

#include "server/core/registry.h"
#include "server/serving/engine.h"

namespace twinserve {

// Both must outlive the collector's registration.
std::shared_ptr<prometheus::Collectable> MakeCoreCollector(
    const ModelRegistry* registry, const InferenceEngine* engine);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_METRICS_PROMETHEUS_EXPORTER_H_
