// Batcher: one variant's dynamic batching queue (after Triton's dynamic
// batcher). Requests wait in a bounded FIFO; a scheduler thread forms a
// batch when a worker is free and either max_batch_size rows (or a
// preferred size) are waiting or the oldest request has waited
// max_queue_delay_us. The batch's inputs are stacked along dim 0, run once,
// and the outputs are split back into per-request views without copying.
//
// A batcher serves one servable (one runner): a variant replaced while
// requests wait gets a batcher of its own. Requests with different non-batch
// dims never share a batch. Requests past their deadline are dropped before
// running with DEADLINE_EXCEEDED. Callbacks run on the executor's threads,
// never on the caller's or the batcher's own thread.
//
// Thread-safe.
#ifndef TWINSERVE_SERVER_SERVING_BATCHER_H_
#define TWINSERVE_SERVER_SERVING_BATCHER_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/tensor.h"
#include "server/runtime/runner.h"
#include "server/serving/batching.h"
#include "server/serving/scheduler.h"
#include "server/serving/variant_stats.h"

namespace twinserve {

class Batcher {
 public:
  using Executor = std::function<void(std::function<void()>)>;

  // `execute` runs closures on the worker pool; at most `max_inflight`
  // batches of this batcher run at once (the pool's size), so requests pile
  // up into larger batches while the workers are busy. `stats` (if set)
  // counts the requests waiting.
  Batcher(std::string name, std::shared_ptr<const Runner> runner,
          Executor execute, int max_inflight,
          std::shared_ptr<VariantStats> stats = nullptr);
  // Runs everything queued, waits for running batches, then returns. May
  // run on an executor thread, from the completion of this batcher's last
  // batch (whose tasks held the last reference to it).
  ~Batcher();

  // Queues a task under `config` (the latest config wins for forming
  // batches). RESOURCE_EXHAUSTED at once when config.queue_capacity tasks
  // wait; `task.done` is then not called. With `spread`, rows that wait
  // when several workers are idle are split over them (worth it when an
  // execution is long; for cheap ones fewer, larger batches win).
  absl::Status Enqueue(Task task, const BatchingConfig& config,
                       bool spread = true);

  size_t queue_size() const;

 private:
  void Loop();
  // Runs one batch on an executor thread and answers its tasks.
  void RunBatch(std::vector<Task> batch);
  void QueueChanged(int64_t delta);

  const std::string name_;
  const std::shared_ptr<const Runner> runner_;
  const Executor execute_;
  const int max_inflight_;
  const std::shared_ptr<VariantStats> stats_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  BatchingConfig config_ ABSL_GUARDED_BY(mu_);
  bool spread_ ABSL_GUARDED_BY(mu_) = true;
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Stacks the tasks' inputs along dim 0 into owned, 64-byte aligned buffers.
// REQUIRES: same number of inputs, dtypes and non-batch dims (BatchableWith).
std::vector<HostTensor> StackInputs(const std::vector<Task>& batch);
// True if `b` can run in one batch with `a`: same input dtypes and equal
// dims past dim 0.
bool BatchableWith(const Task& a, const Task& b);
// Splits outputs whose dim 0 is the sum of `rows` into per-request views
// sharing the outputs' storage. INTERNAL if an output's dim 0 differs.
absl::StatusOr<std::vector<std::vector<HostTensor>>> SplitOutputs(
    const std::vector<HostTensor>& outputs, const std::vector<int64_t>& rows);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_BATCHER_H_
