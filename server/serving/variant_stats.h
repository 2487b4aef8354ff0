// VariantStats: everything the server measures about one variant, recorded
// once per request on the request path (atomics; no Prometheus) and read by
// whatever needs it: ModelStatistics (Triton's cumulative counts and
// durations), GetModelStats and `twinctl compare`, the rollout guards, and
// the Prometheus exporter, which only formats them. Turning /metrics off
// changes none of these numbers.
#ifndef TWINSERVE_SERVER_SERVING_VARIANT_STATS_H_
#define TWINSERVE_SERVER_SERVING_VARIANT_STATS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "kernels/drift.h"
#include "server/runtime/runner.h"
#include "server/serving/live_histogram.h"

namespace twinserve {

struct DurationStat {
  uint64_t count = 0;
  uint64_t ns = 0;
};

struct BatchStat {
  DurationStat compute_input;
  DurationStat compute_infer;
  DurationStat compute_output;
};

struct StatsSnapshot {
  // Triton's ModelStatistics.
  uint64_t last_inference_ms = 0;
  uint64_t inference_count = 0;
  uint64_t execution_count = 0;
  DurationStat success, fail, queue, compute_input, compute_infer,
      compute_output;
  std::map<uint64_t, BatchStat> batches;  // by batch size
  // Failed requests by status code (codes that occurred).
  std::map<absl::StatusCode, uint64_t> failures;
  // Distributions, in seconds (batch size in rows).
  HistogramSnapshot request_seconds, queue_seconds, compute_seconds, batch_size;
  // Now.
  int64_t inflight = 0;
  int64_t queued = 0;
  // As the candidate of comparisons with a baseline (shadow runs, rollout
  // comparisons).
  uint64_t comparisons = 0;
  uint64_t comparison_drops = 0;
  uint64_t top1_agreements = 0;
  uint64_t top1_disagreements = 0;
  HistogramSnapshot cosine, max_abs_error;
};

// How one request went: its own time and the execution that answered it.
struct RequestTiming {
  uint64_t total_ns = 0;  // accepted to answered
  uint64_t queue_ns = 0;  // accepted to its execution's start
  RunTimings compute;     // of the execution
  int64_t rows = 1;       // the request's own inferences
};

class VariantStats {
 public:
  VariantStats();
  VariantStats(const VariantStats&) = delete;
  VariantStats& operator=(const VariantStats&) = delete;

  // A successful request (once per request).
  void RecordSuccess(const RequestTiming& timing);
  // One execution of `rows` rows (once per execution, however many
  // requests shared it).
  void RecordExecution(int64_t rows, const RunTimings& timing);
  // A request this variant was chosen for that failed.
  void RecordFailure(absl::StatusCode code, uint64_t total_ns);
  // A comparison of this variant (the candidate) with its baseline.
  void RecordComparison(const DriftStats& drift);
  // A comparison dropped because the shadow queue was full.
  void RecordComparisonDropped();
  // Requests accepted and not yet answered / waiting to run.
  void AddInflight(int64_t delta);
  void AddQueued(int64_t delta);

  StatsSnapshot Snapshot() const;
  // Mean compute time per execution so far and the executions it is taken
  // over; lock-free, for scheduling decisions.
  uint64_t MeanComputeNs() const;
  uint64_t Executions() const;

 private:
  struct Counter {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> ns{0};
    void Add(uint64_t d) {
      count.fetch_add(1, std::memory_order_relaxed);
      ns.fetch_add(d, std::memory_order_relaxed);
    }
    DurationStat Get() const { return {count.load(), ns.load()}; }
  };
  static constexpr int kCodes = 17;  // absl::StatusCode 0..16

  std::atomic<uint64_t> last_inference_ms_{0};
  std::atomic<uint64_t> inference_count_{0};
  std::atomic<uint64_t> execution_count_{0};
  Counter success_, fail_, queue_, input_, infer_, output_;
  std::array<std::atomic<uint64_t>, kCodes> failures_{};
  LiveHistogram request_seconds_, queue_seconds_, compute_seconds_, batch_size_;
  std::atomic<int64_t> inflight_{0};
  std::atomic<int64_t> queued_{0};
  std::atomic<uint64_t> comparisons_{0};
  std::atomic<uint64_t> comparison_drops_{0};
  std::atomic<uint64_t> agreements_{0};
  std::atomic<uint64_t> disagreements_{0};
  LiveHistogram cosine_, max_abs_error_;
  mutable absl::Mutex batch_mu_;
  std::map<uint64_t, BatchStat> batches_ ABSL_GUARDED_BY(batch_mu_);
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_VARIANT_STATS_H_
