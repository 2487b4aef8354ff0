#include "server/core/stats.h"

#include "absl/time/clock.h"

namespace twinserve {

void VariantStats::RecordSuccess(uint64_t total_ns, uint64_t queue_ns,
                                 uint64_t input_ns, uint64_t infer_ns,
                                 uint64_t output_ns, uint64_t batch_size) {
  RecordRequest(total_ns, queue_ns, input_ns, infer_ns, output_ns, batch_size);
  RecordExecution(batch_size, input_ns, infer_ns, output_ns);
}

void VariantStats::RecordRequest(uint64_t total_ns, uint64_t queue_ns,
                                 uint64_t input_ns, uint64_t infer_ns,
                                 uint64_t output_ns, uint64_t rows) {
  last_inference_ms_.store(absl::ToUnixMillis(absl::Now()),
                           std::memory_order_relaxed);
  inference_count_.fetch_add(rows, std::memory_order_relaxed);
  success_.Add(total_ns);
  queue_.Add(queue_ns);
  input_.Add(input_ns);
  infer_.Add(infer_ns);
  output_.Add(output_ns);
}

void VariantStats::RecordExecution(uint64_t batch_size, uint64_t input_ns,
                                   uint64_t infer_ns, uint64_t output_ns) {
  execution_count_.fetch_add(1, std::memory_order_relaxed);
  absl::MutexLock lock(&batch_mu_);
  BatchStat& b = batches_[batch_size];
  b.compute_input.count++;
  b.compute_input.ns += input_ns;
  b.compute_infer.count++;
  b.compute_infer.ns += infer_ns;
  b.compute_output.count++;
  b.compute_output.ns += output_ns;
}

uint64_t VariantStats::MeanComputeNs() const {
  const uint64_t n = infer_.count.load(std::memory_order_relaxed);
  if (n == 0) return 0;
  return (input_.ns.load(std::memory_order_relaxed) +
          infer_.ns.load(std::memory_order_relaxed) +
          output_.ns.load(std::memory_order_relaxed)) /
         n;
}

void VariantStats::RecordFailure(uint64_t total_ns) {
  last_inference_ms_.store(absl::ToUnixMillis(absl::Now()),
                           std::memory_order_relaxed);
  fail_.Add(total_ns);
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
  absl::MutexLock lock(&batch_mu_);
  s.batches = batches_;
  return s;
}

}  // namespace twinserve
