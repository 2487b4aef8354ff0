// Batcher: one servable's dynamic batching queue (after Triton's dynamic
// batcher), without a thread of its own. Requests wait in a bounded FIFO;
// executors drain it: an executor takes the waiting rows (up to
// max_batch_size, or a preferred size, or what has gathered when the oldest
// request has waited max_queue_delay_us), stacks them along dim 0, runs
// them once, splits the outputs back into per-request views without copies,
// answers each request, and goes on while anything waits.
//
// Where executors run is measured, not tuned: a request that finds no
// executor starts one on its own thread when the servable's executions are
// shorter than a hand-off to a worker costs here (a tiny model: batching
// then costs no thread switch at all), else on the worker pool. When rows
// wait and workers are free, the cost model (server/serving/cost_model.h)
// decides how many executors share them: the split that answers them soonest
// on this machine. Every execution feeds the model.
//
// A batcher serves one servable (one runner). Requests with different
// non-batch dims never share a batch. Requests past their deadline are
// dropped before running with DEADLINE_EXCEEDED.
//
// Thread-safe.
#ifndef TWINSERVE_SERVER_SERVING_BATCHER_H_
#define TWINSERVE_SERVER_SERVING_BATCHER_H_

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/tensor.h"
#include "server/runtime/runner.h"
#include "server/serving/batching.h"
#include "server/serving/cost_model.h"
#include "server/serving/scheduler.h"
#include "server/serving/thread_pool.h"
#include "server/serving/variant_stats.h"

namespace twinserve {

struct BatcherOptions {
  BatchingConfig config;
  // At most this many executions at once (the worker pool's size).
  int max_executors = 1;
  BatchPolicy policy = BatchPolicy::kAdaptive;
  // Executors run on the submitting thread when an execution is expected to
  // take less than this many ns; -1: less than a hand-off to a worker costs
  // (measured); 0: never.
  int64_t inline_below_ns = -1;
};

class Batcher {
 public:
  // `runner`, `pool`, `stats` and `costs` (shared with other schedulers of
  // the same runner) must be set; `pool` must outlive the batcher.
  Batcher(std::string name, std::shared_ptr<const Runner> runner,
          ThreadPool* pool, std::shared_ptr<VariantStats> stats,
          std::shared_ptr<CostModel> costs, BatcherOptions options);
  // Runs everything queued and waits for running executions. May run on an
  // executor's thread, from the completion of this batcher's last batch
  // (whose tasks held the last reference to it).
  ~Batcher();

  // Queues a task; it may run (with others) before this returns, on this
  // thread. RESOURCE_EXHAUSTED at once when queue_capacity tasks wait;
  // `task.done` is then not called. REQUIRES: task.rows <= max_batch_size.
  absl::Status Enqueue(Task task);

  size_t queue_size() const;

 private:
  // Drains the queue; the caller was counted in executors_. `on_caller`:
  // this is the submitting thread, which never waits for company (it hands
  // the waiting to a worker instead).
  void Drain(bool on_caller);
  // Starts `n` more executors on the pool. REQUIRES: counted already.
  void StartOnPool(int n);
  // Whether an execution of `rows` is short enough to run on the thread
  // that has it rather than hand it to a worker.
  bool RunHere(int64_t rows) const;
  // Whether `rows` ready should wait for company (max_queue_delay): with
  // the adaptive policy, only if the cost curve says a fuller batch is
  // cheaper per row; as configured otherwise or while nothing is measured.
  bool WorthWaiting(int64_t rows) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the next batch to run off the queue into `batch` once it is due
  // (or an expired task into `expired`); false when nothing waits, or when
  // `on_caller` and the batch would have to wait. May cut the waiting rows
  // into several batches for other executors (ready_).
  bool NextBatch(bool on_caller, std::vector<Task>* batch,
                 std::vector<Task>* expired) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs one batch and answers its tasks; `running` executions at once.
  void RunBatch(std::vector<Task>& batch, int running);

  const std::string name_;
  const std::shared_ptr<const Runner> runner_;
  ThreadPool* const pool_;
  const std::shared_ptr<VariantStats> stats_;
  const std::shared_ptr<CostModel> costs_;
  const BatcherOptions options_;
  mutable absl::Mutex mu_;
  absl::CondVar cv_;
  std::deque<Task> queue_ ABSL_GUARDED_BY(mu_);
  // Batches already cut from the queue for the next free executor.
  std::deque<std::vector<Task>> ready_ ABSL_GUARDED_BY(mu_);
  // Executors started and not yet finished; of them, those running a batch
  // now. The others are about to look at the queue (or are waiting for
  // company), so a new request joins them instead of starting another.
  int executors_ ABSL_GUARDED_BY(mu_) = 0;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t decisions_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
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
