#include "server/core/metrics.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace twinserve {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;

const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* buckets = new prometheus::Histogram::BucketBoundaries{
      50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6, 1e-3,  1.5e-3, 2e-3,
      3e-3,  5e-3,   7.5e-3, 10e-3,  15e-3,  20e-3,  30e-3, 50e-3,  75e-3,
      0.1,   0.15,   0.25,   0.5,    1,      2.5,    5,     10};
  return *buckets;
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      requests_(BuildCounter()
                    .Name("twinserve_requests_total")
                    .Help("Inference requests by model, variant and outcome "
                          "(code is the gRPC status name)")
                    .Register(*registry_)),
      request_seconds_(BuildHistogram()
                           .Name("twinserve_request_duration_seconds")
                           .Help("Time in the server from request decoded to "
                                 "outputs ready, successful requests")
                           .Register(*registry_)),
      queue_seconds_(BuildHistogram()
                         .Name("twinserve_queue_duration_seconds")
                         .Help("Time a request waited for an inference worker")
                         .Register(*registry_)),
      compute_seconds_(BuildHistogram()
                           .Name("twinserve_compute_duration_seconds")
                           .Help("Time in the model: inputs, forward, outputs")
                           .Register(*registry_)),
      batch_size_(BuildHistogram()
                      .Name("twinserve_batch_size")
                      .Help("Inferences per model execution")
                      .Register(*registry_)),
      inflight_(BuildGauge()
                    .Name("twinserve_inflight_requests")
                    .Help("Requests accepted and not yet answered")
                    .Register(*registry_)),
      queued_(BuildGauge()
                  .Name("twinserve_queued_requests")
                  .Help("Requests waiting for an inference worker or a batch")
                  .Register(*registry_)),
      policy_changes_(BuildCounter()
                          .Name("twinserve_policy_changes_total")
                          .Help("Traffic policy changes by action")
                          .Register(*registry_)),
      rollbacks_(BuildCounter()
                     .Name("twinserve_rollbacks_total")
                     .Help("Traffic policy rollbacks by reason")
                     .Register(*registry_)),
      jobs_(BuildCounter()
                .Name("twinserve_quantization_jobs_total")
                .Help("Quantization jobs by outcome")
                .Register(*registry_)),
      job_seconds_(BuildHistogram()
                       .Name("twinserve_quantization_job_duration_seconds")
                       .Help("Wall time of quantization jobs")
                       .Register(*registry_)),
      drift_cosine_(BuildHistogram()
                        .Name("twinserve_drift_cosine_similarity")
                        .Help("Per-request cosine similarity of a shadowed "
                              "candidate's output to the baseline's")
                        .Register(*registry_)),
      drift_max_abs_(BuildHistogram()
                         .Name("twinserve_drift_max_abs_error")
                         .Help("Per-request max absolute difference between "
                               "candidate and baseline outputs")
                         .Register(*registry_)),
      drift_agree_(BuildCounter()
                       .Name("twinserve_drift_top1_agreements_total")
                       .Help("Compared rows whose top-1 class matched the "
                             "baseline's")
                       .Register(*registry_)),
      drift_disagree_(BuildCounter()
                          .Name("twinserve_drift_top1_disagreements_total")
                          .Help("Compared rows whose top-1 class differed")
                          .Register(*registry_)),
      shadow_runs_(BuildCounter()
                       .Name("twinserve_shadow_runs_total")
                       .Help("Shadow runs of a candidate, off the response "
                             "path")
                       .Register(*registry_)),
      shadow_drops_(BuildCounter()
                        .Name("twinserve_shadow_drops_total")
                        .Help("Shadow runs dropped because the shadow queue "
                              "was full")
                        .Register(*registry_)) {}

Metrics::Variant* Metrics::ForVariant(const std::string& model,
                                      const std::string& variant) {
  absl::MutexLock lock(&mu_);
  auto& slot = variants_[{model, variant}];
  if (!slot) {
    const prometheus::Labels labels = {{"model", model}, {"variant", variant}};
    auto v = std::make_unique<Variant>();
    prometheus::Labels ok = labels;
    ok["code"] = "OK";
    v->success = &requests_.Add(ok);
    v->request_seconds = &request_seconds_.Add(labels, LatencyBuckets());
    v->queue_seconds = &queue_seconds_.Add(labels, LatencyBuckets());
    v->compute_seconds = &compute_seconds_.Add(labels, LatencyBuckets());
    v->batch_size =
        &batch_size_.Add(labels, prometheus::Histogram::BucketBoundaries{
                                     1, 2, 4, 8, 16, 32, 64, 128, 256});
    v->inflight = &inflight_.Add({{"model", model}});
    v->queued = &queued_.Add(labels);
    slot = std::move(v);
  }
  return slot.get();
}

Metrics::Drift* Metrics::ForDrift(const std::string& model,
                                  const std::string& variant) {
  absl::MutexLock lock(&mu_);
  auto& slot = drift_[{model, variant}];
  if (!slot) {
    const prometheus::Labels labels = {{"model", model}, {"variant", variant}};
    auto d = std::make_unique<Drift>();
    d->cosine =
        &drift_cosine_.Add(labels, prometheus::Histogram::BucketBoundaries{
                                       0.5, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999,
                                       0.9995, 0.9999, 0.99999, 1.0});
    d->max_abs_error = &drift_max_abs_.Add(
        labels, prometheus::Histogram::BucketBoundaries{
                    1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5, 1, 5, 10});
    d->agreements = &drift_agree_.Add(labels);
    d->disagreements = &drift_disagree_.Add(labels);
    d->runs = &shadow_runs_.Add(labels);
    d->drops = &shadow_drops_.Add(labels);
    slot = std::move(d);
  }
  return slot.get();
}

Metrics::Drift* Metrics::FindDrift(const std::string& model,
                                   const std::string& variant) {
  absl::MutexLock lock(&mu_);
  auto it = drift_.find({model, variant});
  return it == drift_.end() ? nullptr : it->second.get();
}

void Metrics::RecordFailure(const std::string& model,
                            const std::string& variant, const char* code) {
  requests_.Add({{"model", model}, {"variant", variant}, {"code", code}})
      .Increment();
}

prometheus::Gauge* Metrics::Inflight(const std::string& model) {
  return &inflight_.Add({{"model", model}});
}

void Metrics::SetInflight(const std::string& model, double value) {
  Inflight(model)->Set(value);
}

void Metrics::RecordPolicyChange(const std::string& model,
                                 const std::string& action,
                                 const std::string& reason) {
  policy_changes_.Add({{"model", model}, {"action", action}}).Increment();
  if (action == "rollback") {
    rollbacks_.Add({{"model", model}, {"reason", reason}}).Increment();
  }
}

void Metrics::RecordQuantizationJob(const std::string& model,
                                    const std::string& outcome,
                                    double seconds) {
  jobs_.Add({{"model", model}, {"outcome", outcome}}).Increment();
  job_seconds_
      .Add({{"model", model}},
           prometheus::Histogram::BucketBoundaries{1, 5, 10, 30, 60, 120, 300,
                                                   600, 1800})
      .Observe(seconds);
}

namespace {

class ProcessCollector : public prometheus::Collectable {
 public:
  explicit ProcessCollector(std::string version)
      : version_(std::move(version)),
        start_(absl::ToUnixSeconds(absl::Now())) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    auto gauge =
        [&out](const std::string& name, const std::string& help, double value,
               prometheus::MetricType type = prometheus::MetricType::Gauge) {
          prometheus::MetricFamily f;
          f.name = name;
          f.help = help;
          f.type = type;
          prometheus::ClientMetric m;
          if (type == prometheus::MetricType::Counter) {
            m.counter.value = value;
          } else {
            m.gauge.value = value;
          }
          f.metric.push_back(m);
          out.push_back(std::move(f));
        };
    const long page = sysconf(_SC_PAGESIZE);
    const long ticks = sysconf(_SC_CLK_TCK);
    std::ifstream stat("/proc/self/stat");
    std::string line;
    std::getline(stat, line);
    // Fields after the ")" that closes the command name.
    const size_t close = line.rfind(')');
    std::vector<std::string> f =
        absl::StrSplit(line.substr(close + 2), ' ', absl::SkipEmpty());
    if (f.size() > 22) {
      const double utime = std::stod(f[11]), stime = std::stod(f[12]);
      gauge("process_cpu_seconds_total", "User and system CPU time",
            (utime + stime) / ticks, prometheus::MetricType::Counter);
      gauge("process_resident_memory_bytes", "Resident set size",
            std::stod(f[21]) * page);
      gauge("process_virtual_memory_bytes", "Virtual memory size",
            std::stod(f[20]));
    }
    int fds = 0;
    if (DIR* d = opendir("/proc/self/fd")) {
      while (readdir(d) != nullptr) ++fds;
      closedir(d);
      fds -= 2;  // . and ..
    }
    gauge("process_open_fds", "Open file descriptors", fds);
    gauge("process_start_time_seconds", "Start time, seconds since epoch",
          static_cast<double>(start_));
    prometheus::MetricFamily info;
    info.name = "twinserve_build_info";
    info.help = "Build information; the value is always 1";
    info.type = prometheus::MetricType::Gauge;
    prometheus::ClientMetric m;
    m.label = {prometheus::ClientMetric::Label{"version", version_}};
    m.gauge.value = 1;
    info.metric.push_back(m);
    out.push_back(std::move(info));
    return out;
  }

 private:
  const std::string version_;
  const int64_t start_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeProcessCollector(
    const std::string& version) {
  return std::make_shared<ProcessCollector>(version);
}

}  // namespace twinserve
