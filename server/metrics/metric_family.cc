#include "server/metrics/metric_family.h"

#include <algorithm>
#include <utility>

namespace twinserve {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily Family(const std::string& name, const std::string& help,
                    MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

MetricLabels Sorted(MetricLabels labels) {
  std::sort(labels.begin(), labels.end(),
            [](const ClientMetric::Label& a, const ClientMetric::Label& b) {
              return a.name < b.name;
            });
  return labels;
}

void AddValue(MetricFamily* f, MetricLabels labels, double value) {
  ClientMetric m;
  m.label = Sorted(std::move(labels));
  if (f->type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f->metric.push_back(std::move(m));
}

MetricFamily Single(const std::string& name, const std::string& help,
                    MetricType type, MetricLabels labels, double value) {
  MetricFamily f = Family(name, help, type);
  AddValue(&f, std::move(labels), value);
  return f;
}

}  // namespace twinserve
