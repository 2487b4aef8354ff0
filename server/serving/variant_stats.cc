#include "server/serving/variant_stats.h"

#include "server/common/clock.h"

namespace twinserve {

VariantStats::VariantStats()
    : request_seconds_(LatencyBounds()),
      queue_seconds_(LatencyBounds()),
      compute_seconds_(LatencyBounds()),
      batch_size_(BatchSizeBounds()),
      cosine_(CosineBounds()),
      max_abs_error_(AbsErrorBounds()) {}

void VariantStats::RecordSuccess(const RequestTiming& t) {
  last_inference_ms_.store(NowUnixMs(), std::memory_order_relaxed);
  inference_count_.fetch_add(t.rows, std::memory_order_relaxed);
  success_.Add(t.total_ns);
  queue_.Add(t.queue_ns);
  input_.Add(t.compute.input_ns);
  infer_.Add(t.compute.infer_ns);
  output_.Add(t.compute.output_ns);
  request_seconds_.Observe(t.total_ns * 1e-9);
  queue_seconds_.Observe(t.queue_ns * 1e-9);
  compute_seconds_.Observe(
      (t.compute.input_ns + t.compute.infer_ns + t.compute.output_ns) * 1e-9);
}

void VariantStats::RecordExecution(int64_t rows, const RunTimings& t) {
  execution_count_.fetch_add(1, std::memory_order_relaxed);
  batch_size_.Observe(static_cast<double>(rows));
  absl::MutexLock lock(&batch_mu_);
  BatchStat& b = batches_[rows];
  b.compute_input.count++;
  b.compute_input.ns += t.input_ns;
  b.compute_infer.count++;
  b.compute_infer.ns += t.infer_ns;
  b.compute_output.count++;
  b.compute_output.ns += t.output_ns;
}

void VariantStats::RecordFailure(absl::StatusCode code, uint64_t total_ns) {
  last_inference_ms_.store(NowUnixMs(), std::memory_order_relaxed);
  fail_.Add(total_ns);
  const int c = static_cast<int>(code);
  failures_[c >= 0 && c < kCodes ? c
                                 : static_cast<int>(absl::StatusCode::kUnknown)]
      .fetch_add(1, std::memory_order_relaxed);
}

void VariantStats::RecordComparison(const DriftStats& d) {
  comparisons_.fetch_add(1, std::memory_order_relaxed);
  agreements_.fetch_add(d.top1_agreements, std::memory_order_relaxed);
  disagreements_.fetch_add(d.top1_disagreements, std::memory_order_relaxed);
  if (d.rows > 0) cosine_.Observe(d.cosine_sum / d.rows);
  max_abs_error_.Observe(d.max_abs_error);
}

void VariantStats::RecordComparisonDropped() {
  comparison_drops_.fetch_add(1, std::memory_order_relaxed);
}

void VariantStats::AddInflight(int64_t delta) {
  inflight_.fetch_add(delta, std::memory_order_relaxed);
}

void VariantStats::AddQueued(int64_t delta) {
  queued_.fetch_add(delta, std::memory_order_relaxed);
}

uint64_t VariantStats::MeanComputeNs() const {
  const uint64_t n = infer_.count.load(std::memory_order_relaxed);
  if (n == 0) return 0;
  return (input_.ns.load(std::memory_order_relaxed) +
          infer_.ns.load(std::memory_order_relaxed) +
          output_.ns.load(std::memory_order_relaxed)) /
         n;
}

uint64_t VariantStats::Executions() const {
  return execution_count_.load(std::memory_order_relaxed);
}

StatsSnapshot VariantStats::Snapshot() const {
  StatsSnapshot s;
  s.last_inference_ms = last_inference_ms_.load();
  s.inference_count = inference_count_.load();
  s.execution_count = execution_count_.load();
  s.success = success_.Get();
  s.fail = fail_.Get();
  s.queue = queue_.Get();
  s.compute_input = input_.Get();
  s.compute_infer = infer_.Get();
  s.compute_output = output_.Get();
  for (int c = 0; c < kCodes; ++c) {
    if (const uint64_t n = failures_[c].load(); n > 0) {
      s.failures[static_cast<absl::StatusCode>(c)] = n;
    }
  }
  s.request_seconds = request_seconds_.Snapshot();
  s.queue_seconds = queue_seconds_.Snapshot();
  s.compute_seconds = compute_seconds_.Snapshot();
  s.batch_size = batch_size_.Snapshot();
  s.inflight = inflight_.load();
  s.queued = queued_.load();
  s.comparisons = comparisons_.load();
  s.comparison_drops = comparison_drops_.load();
  s.top1_agreements = agreements_.load();
  s.top1_disagreements = disagreements_.load();
  s.cosine = cosine_.Snapshot();
  s.max_abs_error = max_abs_error_.Snapshot();
  absl::MutexLock lock(&batch_mu_);
  s.batches = batches_;
  return s;
}

}  // namespace twinserve
