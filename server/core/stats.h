// Per-variant inference statistics with Triton's ModelStatistics meaning:
// cumulative counts and durations, lock-free on the request path.
#ifndef TWINSERVE_SERVER_CORE_STATS_H_
#define TWINSERVE_SERVER_CORE_STATS_H_

#include <atomic>
#include <cstdint>
#include <map>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

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
  uint64_t last_inference_ms = 0;
  uint64_t inference_count = 0;
  uint64_t execution_count = 0;
  DurationStat success, fail, queue, compute_input, compute_infer,
      compute_output;
  std::map<uint64_t, BatchStat> batches;  // by batch size
};

class VariantStats {
 public:
  // A request that ran alone: `batch_size` inferences in one execution.
  void RecordSuccess(uint64_t total_ns, uint64_t queue_ns, uint64_t input_ns,
                     uint64_t infer_ns, uint64_t output_ns,
                     uint64_t batch_size);
  // A request of `rows` inferences answered from a (possibly shared)
  // execution whose compute times are given.
  void RecordRequest(uint64_t total_ns, uint64_t queue_ns, uint64_t input_ns,
                     uint64_t infer_ns, uint64_t output_ns, uint64_t rows);
  // One execution of `batch_size` rows (once per batch).
  void RecordExecution(uint64_t batch_size, uint64_t input_ns,
                       uint64_t infer_ns, uint64_t output_ns);
  void RecordFailure(uint64_t total_ns);
  StatsSnapshot Snapshot() const;
  // Mean compute time (input + infer + output) per execution so far, and
  // the executions it is taken over. Lock-free, for scheduling decisions.
  uint64_t MeanComputeNs() const;
  uint64_t Executions() const { return execution_count_.load(); }

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

  std::atomic<uint64_t> last_inference_ms_{0};
  std::atomic<uint64_t> inference_count_{0};
  std::atomic<uint64_t> execution_count_{0};
  Counter success_, fail_, queue_, input_, infer_, output_;
  mutable absl::Mutex batch_mu_;
  std::map<uint64_t, BatchStat> batches_ ABSL_GUARDED_BY(batch_mu_);
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_STATS_H_
