#include "server/metrics/prometheus_exporter.h"

#include <prometheus/metric_family.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "server/metrics/metric_family.h"

namespace twinserve {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = MetricLabels;

void AddHistogram(MetricFamily* f, Labels labels, const HistogramSnapshot& h) {
  ClientMetric m;
  m.label = Sorted(std::move(labels));
  m.histogram.sample_count = h.count;
  m.histogram.sample_sum = h.sum;
  for (size_t i = 0; i < h.bounds.size(); ++i) {
    ClientMetric::Bucket b;
    b.upper_bound = h.bounds[i];
    b.cumulative_count = h.cumulative[i];
    m.histogram.bucket.push_back(b);
  }
  f->metric.push_back(std::move(m));
}

class CoreCollector : public prometheus::Collectable {
 public:
  CoreCollector(const ModelRegistry* registry, const InferenceEngine* engine)
      : registry_(registry), engine_(engine) {}

  std::vector<MetricFamily> Collect() const override {
    const auto C = MetricType::Counter;
    const auto G = MetricType::Gauge;
    const auto H = MetricType::Histogram;
    MetricFamily requests = Family(
        "twinserve_requests_total",
        "Inference requests by model, variant and outcome (code is the gRPC "
        "status name)",
        C);
    MetricFamily unrouted = Family(
        "twinserve_unrouted_requests_total",
        "Requests that failed before a variant was chosen (unknown model or "
        "version, a model not loaded yet), by code; the requested names are "
        "not labels",
        C);
    MetricFamily request_seconds =
        Family("twinserve_request_duration_seconds",
               "Time in the server from request decoded to outputs ready, "
               "successful requests",
               H);
    MetricFamily queue_seconds =
        Family("twinserve_queue_duration_seconds",
               "Time a request waited for an inference worker or a batch", H);
    MetricFamily compute_seconds =
        Family("twinserve_compute_duration_seconds",
               "Time in the model: inputs, forward, outputs", H);
    MetricFamily batch_size =
        Family("twinserve_batch_size", "Inferences per model execution", H);
    MetricFamily inflight = Family("twinserve_inflight_requests",
                                   "Requests accepted and not yet answered", G);
    MetricFamily queued =
        Family("twinserve_queued_requests",
               "Requests waiting for an inference worker or a batch", G);
    MetricFamily policy_changes = Family("twinserve_policy_changes_total",
                                         "Traffic policy changes by action", C);
    MetricFamily rollbacks =
        Family("twinserve_rollbacks_total",
               "Traffic policy rollbacks by who: operator or guard:<name>", C);
    MetricFamily jobs = Family("twinserve_quantization_jobs_total",
                               "Quantization jobs by outcome", C);
    MetricFamily job_seconds =
        Family("twinserve_quantization_job_duration_seconds",
               "Wall time of quantization jobs", H);
    MetricFamily cosine =
        Family("twinserve_drift_cosine_similarity",
               "Per-request cosine similarity of a compared candidate's "
               "output to the baseline's",
               H);
    MetricFamily max_abs =
        Family("twinserve_drift_max_abs_error",
               "Per-request max absolute difference between candidate and "
               "baseline outputs",
               H);
    MetricFamily agree =
        Family("twinserve_drift_top1_agreements_total",
               "Compared rows whose top-1 class matched the baseline's", C);
    MetricFamily disagree =
        Family("twinserve_drift_top1_disagreements_total",
               "Compared rows whose top-1 class differed", C);
    MetricFamily shadow_runs =
        Family("twinserve_shadow_runs_total",
               "Comparison runs of a candidate, off the response path", C);
    MetricFamily shadow_drops =
        Family("twinserve_shadow_drops_total",
               "Comparison runs dropped because the shadow queue was full", C);
    MetricFamily size = Family("twinserve_model_size_bytes",
                               "Serialized size of each variant", G);
    MetricFamily params = Family("twinserve_model_parameter_bytes",
                                 "Parameter bytes of each variant", G);
    MetricFamily share =
        Family("twinserve_traffic_share",
               "Share of unpinned traffic the policy sends to each variant", G);
    MetricFamily ready =
        Family("twinserve_variant_ready", "1 if the variant serves, else 0", G);
    MetricFamily version = Family("twinserve_policy_version",
                                  "Version of each model's traffic policy", G);
    MetricFamily stage =
        Family("twinserve_rollout_stage",
               "1-based stage of a running rollout; 0 when none runs", G);
    MetricFamily percent =
        Family("twinserve_rollout_percent",
               "Percent of traffic a running rollout gives its candidate", G);
    MetricFamily calibration =
        Family("twinserve_calibration_samples",
               "Samples in each stored calibration set", G);

    for (const auto& [code, n] : engine_->UnroutedFailures()) {
      AddValue(&unrouted, {{"code", absl::StatusCodeToString(code)}},
               static_cast<double>(n));
    }
    for (const ModelView& view : registry_->Views()) {
      const std::string& model = view.status.name;
      const TrafficPolicy& p = view.policy;
      const auto shares = TrafficShares(p);
      AddValue(&version, {{"model", model}}, p.version);
      const bool rolling = p.kind == PolicyKind::kRollout && !p.steps.empty();
      AddValue(&stage, {{"model", model}}, rolling ? p.stage + 1 : 0);
      AddValue(
          &percent, {{"model", model}},
          rolling ? p.steps[std::min<size_t>(p.stage, p.steps.size() - 1)] : 0);
      for (const auto& [action, n] : view.events.policy_changes) {
        AddValue(&policy_changes, {{"model", model}, {"action", action}}, n);
      }
      for (const auto& [reason, n] : view.events.rollbacks) {
        AddValue(&rollbacks, {{"model", model}, {"reason", reason}}, n);
      }
      for (const auto& [outcome, n] : view.events.jobs) {
        AddValue(&jobs, {{"model", model}, {"outcome", outcome}}, n);
      }
      if (view.events.job_seconds.count > 0) {
        AddHistogram(&job_seconds, {{"model", model}}, view.events.job_seconds);
      }
      for (const auto& [set, c] : view.calibration_sets) {
        AddValue(&calibration, {{"model", model}, {"set", set}}, c.samples);
      }
      int64_t model_inflight = 0;
      for (const VariantStatus& v : view.status.variants) {
        const Labels labels = {{"model", model}, {"variant", v.name}};
        AddValue(&size, labels, v.serialized_bytes);
        AddValue(&params, labels, v.parameter_bytes);
        AddValue(&ready, labels, v.state == VariantState::kReady ? 1 : 0);
        auto sh = shares.find(v.name);
        AddValue(&share, labels, sh == shares.end() ? 0 : sh->second);
        auto it = view.stats.find(v.name);
        if (it == view.stats.end()) continue;
        const StatsSnapshot s = it->second->Snapshot();
        model_inflight += s.inflight;
        AddValue(&queued, labels, s.queued);
        Labels ok = labels;
        ok.push_back({"code", "OK"});
        AddValue(&requests, ok, s.success.count);
        for (const auto& [code, n] : s.failures) {
          Labels failed = labels;
          failed.push_back({"code", absl::StatusCodeToString(code)});
          AddValue(&requests, failed, n);
        }
        AddHistogram(&request_seconds, labels, s.request_seconds);
        AddHistogram(&queue_seconds, labels, s.queue_seconds);
        AddHistogram(&compute_seconds, labels, s.compute_seconds);
        AddHistogram(&batch_size, labels, s.batch_size);
        if (s.comparisons + s.comparison_drops > 0) {
          AddHistogram(&cosine, labels, s.cosine);
          AddHistogram(&max_abs, labels, s.max_abs_error);
          AddValue(&agree, labels, s.top1_agreements);
          AddValue(&disagree, labels, s.top1_disagreements);
          AddValue(&shadow_runs, labels, s.comparisons);
          AddValue(&shadow_drops, labels, s.comparison_drops);
        }
      }
      AddValue(&inflight, {{"model", model}}, model_inflight);
    }
    return {requests,
            unrouted,
            request_seconds,
            queue_seconds,
            compute_seconds,
            batch_size,
            inflight,
            queued,
            policy_changes,
            rollbacks,
            jobs,
            job_seconds,
            cosine,
            max_abs,
            agree,
            disagree,
            shadow_runs,
            shadow_drops,
            size,
            params,
            share,
            ready,
            version,
            stage,
            percent,
            calibration};
  }

 private:
  const ModelRegistry* const registry_;
  const InferenceEngine* const engine_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeCoreCollector(
    const ModelRegistry* registry, const InferenceEngine* engine) {
  return std::make_shared<CoreCollector>(registry, engine);
}

}  // namespace twinserve
