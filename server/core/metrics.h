// Metrics: the server's one prometheus-cpp registry. Families are built once
// (Triton's metrics.cc style); per (model, variant) handles are created on
// first use and cached, so the request path does only atomic updates.
//
// Names: twinserve_*, base units, counters end in _total; labels model and
// variant (plus code on failures, action/reason on policy changes).
#ifndef TWINSERVE_SERVER_CORE_METRICS_H_
#define TWINSERVE_SERVER_CORE_METRICS_H_

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace twinserve {

class Metrics {
 public:
  // The handles of one (model, variant).
  struct Variant {
    prometheus::Counter* success;
    prometheus::Histogram* request_seconds;
    prometheus::Histogram* queue_seconds;
    prometheus::Histogram* compute_seconds;
    prometheus::Histogram* batch_size;
    prometheus::Gauge* inflight;  // per model, shared by its variants
    // Waiting for a worker or a batch (Triton's pending request count).
    prometheus::Gauge* queued;
  };

  // Drift between a candidate and the baseline it shadows.
  struct Drift {
    prometheus::Histogram* cosine;
    prometheus::Histogram* max_abs_error;
    prometheus::Counter* agreements;
    prometheus::Counter* disagreements;
    prometheus::Counter* runs;
    prometheus::Counter* drops;
  };

  Metrics();
  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Thread-safe; the pointer stays valid for the Metrics' life.
  Variant* ForVariant(const std::string& model, const std::string& variant);
  void RecordFailure(const std::string& model, const std::string& variant,
                     const char* code);
  // Thread-safe; `variant` is the candidate.
  Drift* ForDrift(const std::string& model, const std::string& variant);
  // The drift handles if a shadow run ever created them, else null.
  Drift* FindDrift(const std::string& model, const std::string& variant);
  void SetInflight(const std::string& model, double value);
  prometheus::Gauge* Inflight(const std::string& model);
  void RecordPolicyChange(const std::string& model, const std::string& action,
                          const std::string& reason);
  void RecordQuantizationJob(const std::string& model,
                             const std::string& outcome, double seconds);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& request_seconds_;
  prometheus::Family<prometheus::Histogram>& queue_seconds_;
  prometheus::Family<prometheus::Histogram>& compute_seconds_;
  prometheus::Family<prometheus::Histogram>& batch_size_;
  prometheus::Family<prometheus::Gauge>& inflight_;
  prometheus::Family<prometheus::Gauge>& queued_;
  prometheus::Family<prometheus::Counter>& policy_changes_;
  prometheus::Family<prometheus::Counter>& rollbacks_;
  prometheus::Family<prometheus::Counter>& jobs_;
  prometheus::Family<prometheus::Histogram>& job_seconds_;
  prometheus::Family<prometheus::Histogram>& drift_cosine_;
  prometheus::Family<prometheus::Histogram>& drift_max_abs_;
  prometheus::Family<prometheus::Counter>& drift_agree_;
  prometheus::Family<prometheus::Counter>& drift_disagree_;
  prometheus::Family<prometheus::Counter>& shadow_runs_;
  prometheus::Family<prometheus::Counter>& shadow_drops_;

  absl::Mutex mu_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Variant>>
      variants_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Drift>> drift_
      ABSL_GUARDED_BY(mu_);
};

// Latency buckets from 50 us to 10 s: sub-millisecond resolution for small
// models, seconds for big ones.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

// Process metrics (resident memory, CPU seconds, open fds, start time) and
// twinserve_build_info, read from /proc at scrape time.
std::shared_ptr<prometheus::Collectable> MakeProcessCollector(
    const std::string& version);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_METRICS_H_
