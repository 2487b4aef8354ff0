// Process metrics (resident memory, CPU seconds, open fds, start time) and
// twinserve_build_info, read from /proc at scrape time.
#ifndef TWINSERVE_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define TWINSERVE_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <prometheus/collectable.h>

#include <memory>
#include <string>

namespace twinserve {

std::shared_ptr<prometheus::Collectable> MakeProcessCollector(
    const std::string& version);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_METRICS_PROCESS_COLLECTOR_H_
