#include "server/core/state_collector.h"

#include <prometheus/metric_family.h>

namespace twinserve {
namespace {

class StateCollector : public prometheus::Collectable {
 public:
  explicit StateCollector(const ModelRegistry* registry)
      : registry_(registry) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily size =
        Family("twinserve_model_size_bytes", "Serialized size of each variant");
    prometheus::MetricFamily params = Family("twinserve_model_parameter_bytes",
                                             "Parameter bytes of each variant");
    prometheus::MetricFamily share =
        Family("twinserve_traffic_share",
               "Share of unpinned traffic the policy sends to each variant");
    prometheus::MetricFamily ready =
        Family("twinserve_variant_ready", "1 if the variant serves, else 0");
    prometheus::MetricFamily version = Family(
        "twinserve_policy_version", "Version of each model's traffic policy");
    prometheus::MetricFamily stage =
        Family("twinserve_rollout_stage",
               "1-based stage of a running rollout; 0 when none runs");
    prometheus::MetricFamily percent =
        Family("twinserve_rollout_percent",
               "Percent of traffic a running rollout gives its candidate");
    for (const ModelStatus& m : registry_->List()) {
      auto policy = registry_->GetPolicy(m.name);
      std::map<std::string, double> shares;
      if (policy.ok()) {
        shares = TrafficShares(*policy);
        Add(&version, {{"model", m.name}}, policy->version);
        const bool rolling =
            policy->kind == PolicyKind::kRollout && !policy->steps.empty();
        Add(&stage, {{"model", m.name}}, rolling ? policy->stage + 1 : 0);
        Add(&percent, {{"model", m.name}},
            rolling ? policy->steps[std::min<size_t>(policy->stage,
                                                     policy->steps.size() - 1)]
                    : 0);
      }
      for (const VariantStatus& v : m.variants) {
        const std::vector<prometheus::ClientMetric::Label> labels = {
            {"model", m.name}, {"variant", v.name}};
        Add(&size, labels, v.serialized_bytes);
        Add(&params, labels, v.parameter_bytes);
        Add(&ready, labels, v.state == VariantState::kReady ? 1 : 0);
        auto it = shares.find(v.name);
        Add(&share, labels, it == shares.end() ? 0 : it->second);
      }
    }
    return {size, params, share, ready, version, stage, percent};
  }

 private:
  static prometheus::MetricFamily Family(const std::string& name,
                                         const std::string& help) {
    prometheus::MetricFamily f;
    f.name = name;
    f.help = help;
    f.type = prometheus::MetricType::Gauge;
    return f;
  }
  static void Add(prometheus::MetricFamily* f,
                  std::vector<prometheus::ClientMetric::Label> labels,
                  double value) {
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    m.gauge.value = value;
    f->metric.push_back(std::move(m));
  }

  const ModelRegistry* const registry_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeStateCollector(
    const ModelRegistry* registry) {
  return std::make_shared<StateCollector>(registry);
}

}  // namespace twinserve
