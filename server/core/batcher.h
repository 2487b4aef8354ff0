// Batcher: one variant's dynamic batching queue (after Triton's dynamic
// batcher). Requests wait in a bounded FIFO; a scheduler thread forms a
// batch when a worker is free and either max_batch_size rows (or a
// preferred size) are waiting or the oldest request has waited
// max_queue_delay_us. The batch's inputs are stacked along dim 0, run once,
// and the outputs are split back into per-request views without copying.
//
// Requests of different runners (a variant replaced while requests wait)
// or with different non-batch dims never share a batch. Requests past
// their deadline are dropped before running with DEADLINE_EXCEEDED.
// Callbacks run on the executor's threads, never on the caller's or the
// scheduler's.
//
// Thread-safe.
#ifndef TWINSERVE_SERVER_CORE_BATCHER_H_
#define TWINSERVE_SERVER_CORE_BATCHER_H_

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/core/batching.h"
#include "server/core/runner.h"
#include "server/core/tensor.h"

namespace twinserve {

// What one execution looked like, as seen by one of its requests.
struct BatchInfo {
  uint64_t queue_ns = 0;   // enqueue to the start of the execution
  RunTimings timings;      // of the whole execution
  int64_t batch_rows = 0;  // rows in the execution
  int requests = 0;        // requests in the execution
  bool first = false;      // exactly one request per execution has it
};

struct BatchTask {
  // Must stay alive until `done` has run (the caller's ServableHandle).
  const Runner* runner = nullptr;
  // Ordered as the runner's signature; dim 0 of each is this request's rows.
  std::vector<HostTensor> inputs;
  uint64_t enqueue_ns = 0;   // steady clock
  uint64_t deadline_ns = 0;  // steady clock; 0 = none
  // Called exactly once on an executor thread with this request's outputs
  // (views into the batch's outputs) or the error.
  std::function<void(absl::StatusOr<std::vector<HostTensor>> outputs,
                     const BatchInfo& info,
                     const std::vector<HostTensor>& inputs)>
      done;
};

class Batcher {
 public:
  using Executor = std::function<void(std::function<void()>)>;

  // `execute` runs closures on the worker pool; at most `max_inflight`
  // batches of this batcher run at once (the pool's size), so requests pile
  // up into larger batches while the workers are busy. `on_queue_change`
  // (if set) hears every change of the number of waiting requests (+1 on
  // enqueue, -n when n leave to run or expire), e.g. for a gauge.
  Batcher(std::string name, Executor execute, int max_inflight,
          std::function<void(int)> on_queue_change = nullptr);
  // Runs everything queued, waits for running batches, then returns.
  ~Batcher();

  // Queues a task under `config` (the latest config wins for forming
  // batches). RESOURCE_EXHAUSTED at once when config.queue_capacity tasks
  // wait; `task.done` is then not called. With `spread`, rows that wait
  // when several workers are idle are split over them (worth it when an
  // execution is long; for cheap ones fewer, larger batches win).
  absl::Status Enqueue(BatchTask task, const BatchingConfig& config,
                       bool spread = true);

  size_t queue_size() const;

 private:
  void Loop();
  // Runs one batch on an executor thread and answers its tasks.
  void RunBatch(std::vector<BatchTask> batch);

  const std::string name_;
  const Executor execute_;
  const int max_inflight_;
  const std::function<void(int)> on_queue_change_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<BatchTask> queue_ ABSL_GUARDED_BY(mu_);
  BatchingConfig config_ ABSL_GUARDED_BY(mu_);
  bool spread_ ABSL_GUARDED_BY(mu_) = true;
  int inflight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Stacks the tasks' inputs along dim 0 into owned, 64-byte aligned buffers.
// REQUIRES: same number of inputs, dtypes and non-batch dims (BatchableWith).
std::vector<HostTensor> StackInputs(const std::vector<BatchTask>& batch);
// True if `b` can run in one batch with `a`: same runner, same input dtypes
// and equal dims past dim 0.
bool BatchableWith(const BatchTask& a, const BatchTask& b);
// Splits outputs whose dim 0 is the sum of `rows` into per-request views
// sharing the outputs' storage. INTERNAL if an output's dim 0 differs.
absl::StatusOr<std::vector<std::vector<HostTensor>>> SplitOutputs(
    const std::vector<HostTensor>& outputs, const std::vector<int64_t>& rows);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_BATCHER_H_
