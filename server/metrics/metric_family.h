// Building Prometheus families at scrape time, shared by the collectors:
// a family, and its samples with their labels in name order (as
// prometheus-cpp's own registry writes them, so the text is stable).
#ifndef TWINSERVE_SERVER_METRICS_METRIC_FAMILY_H_
#define TWINSERVE_SERVER_METRICS_METRIC_FAMILY_H_

#include <prometheus/metric_family.h>

#include <string>
#include <vector>

namespace twinserve {

using MetricLabels = std::vector<prometheus::ClientMetric::Label>;

prometheus::MetricFamily Family(const std::string& name,
                                const std::string& help,
                                prometheus::MetricType type);

// One sample: a counter's or a gauge's value, as the family's type says.
void AddValue(prometheus::MetricFamily* f, MetricLabels labels, double value);

// A family of one sample.
prometheus::MetricFamily Single(const std::string& name,
                                const std::string& help,
                                prometheus::MetricType type,
                                MetricLabels labels, double value);

// `labels` in name order.
MetricLabels Sorted(MetricLabels labels);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_METRICS_METRIC_FAMILY_H_
