// Metrics computed from the registry's state at scrape time, so they can
// never go stale: model size per variant, traffic share per variant, variant
// readiness, calibration samples per set.
#ifndef TWINSERVE_SERVER_CORE_STATE_COLLECTOR_H_
#define TWINSERVE_SERVER_CORE_STATE_COLLECTOR_H_

#include <prometheus/collectable.h>

#include <memory>

#include "server/core/registry.h"

namespace twinserve {

// `registry` must outlive the collector's registration.
std::shared_ptr<prometheus::Collectable> MakeStateCollector(
    const ModelRegistry* registry);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_STATE_COLLECTOR_H_
