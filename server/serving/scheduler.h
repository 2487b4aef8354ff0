// Scheduler: how the requests of one servable get to its runner (after
// Triton's Scheduler). Each published servable gets its own, built when it is
// published from its batching settings:
//   - DirectScheduler: every request runs alone, on a worker, or (for a
//     model whose executions are shorter than the hand-offs cost) right on
//     the thread that submits it;
//   - BatchingScheduler: requests wait up to max_queue_delay for others and
//     run stacked along dim 0 (server/serving/batcher.h).
// A scheduler lives as long as its servable's last handle: a servable
// replaced or removed drains its own queue and then goes away, threads and
// all.
#ifndef TWINSERVE_SERVER_SERVING_SCHEDULER_H_
#define TWINSERVE_SERVER_SERVING_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/common/tensor.h"
#include "server/runtime/runner.h"
#include "server/serving/batching.h"
#include "server/serving/cost_model.h"
#include "server/serving/thread_pool.h"
#include "server/serving/variant_stats.h"

namespace twinserve {

// How a batching servable waits for company and cuts waiting rows.
enum class BatchPolicy {
  // From the runner's measured cost curve (cost_model.h): waits only where
  // a fuller batch pays for the wait, cuts rows as the curve says (default).
  kAdaptive,
  // As configured, Triton's way: waits up to max_queue_delay_us for
  // max_batch_size (or a preferred size), one execution takes all it may.
  kFixed,
  // As kFixed, but the rows are spread over every free worker.
  kSpread,
};

// What one execution looked like, as seen by one of its requests.
struct ExecutionInfo {
  uint64_t queue_ns = 0;   // submitted to the start of the execution
  RunTimings timings;      // of the whole execution
  int64_t batch_rows = 0;  // rows in the execution
  int requests = 0;        // requests in the execution
  bool first = false;      // exactly one request per execution has it
};

// One request handed to a scheduler.
struct Task {
  // Ordered as the runner's signature; for a batchable model dim 0 of each
  // is this request's rows. Views the caller keeps alive until `done`.
  std::vector<HostTensor> inputs;
  int64_t rows = 1;
  uint64_t enqueue_ns = 0;   // steady clock
  uint64_t deadline_ns = 0;  // steady clock; 0 = none
  // Called exactly once with this request's outputs (views into the
  // execution's outputs) or the error: DEADLINE_EXCEEDED if the deadline
  // passed before it ran, INTERNAL if forward threw.
  std::function<void(absl::StatusOr<std::vector<HostTensor>> outputs,
                     const ExecutionInfo& info,
                     const std::vector<HostTensor>& inputs)>
      done;
};

class Scheduler {
 public:
  virtual ~Scheduler() = default;
  // Runs `task` now or later. RESOURCE_EXHAUSTED naming the queue and its
  // capacity when it is full; `task.done` is then not called.
  virtual absl::Status Submit(Task task) = 0;
};

struct SchedulerOptions {
  // Threads running forward passes (the "ts-infer" pool), shared by every
  // servable. Together with LibTorch's intra-op threads they should not
  // exceed the cores.
  int worker_threads = 2;
  // Requests of a servable whose executions take less than this run on the
  // thread that submits them (a gRPC thread) instead of a worker. -1 (the
  // default): less than a hand-off to a worker costs on this machine,
  // measured (ThreadPool::handoff_ns); 0: never.
  int64_t inline_compute_us = -1;
  // How batching waits and cuts (batcher.h); kFixed and kSpread are the
  // static configurations to compare against.
  BatchPolicy policy = BatchPolicy::kAdaptive;
  // Time the publish-time probe of a batching servable's cost curve may
  // take, in ms (its largest sizes are then left to live executions).
  int probe_budget_ms = 1500;
};

// Makes the schedulers of servables; owns the worker pool they share, so it
// must outlive every scheduler it made. Measures the pool's hand-off cost
// at construction. Keeps one cost model per runner, so a servable
// republished with other batching settings keeps what was measured.
class SchedulerFactory {
 public:
  explicit SchedulerFactory(SchedulerOptions options);

  // A BatchingScheduler when `config` enables batching (its runner's cost
  // curve then probed on the worker pool, in the background, unless known),
  // else a DirectScheduler. `name` ("model 'm' version 'fp32'") appears in
  // errors. REQUIRES: `config` passed ValidateBatching for the runner's
  // signature.
  std::shared_ptr<Scheduler> Make(const std::string& name,
                                  std::shared_ptr<const Runner> runner,
                                  std::shared_ptr<VariantStats> stats,
                                  const BatchingConfig& config);

  // The cost model of `runner` for batches up to `max_rows` (made, or
  // remade larger, on first use).
  std::shared_ptr<CostModel> CostsFor(const Runner* runner, int max_rows);

  ThreadPool* workers() { return &workers_; }

 private:
  // Measures one execution at batch sizes 1, 2, 4, ... up to the model's
  // max within the time budget, into `costs`, skipping sizes measured
  // already (by live executions or an earlier probe).
  void Probe(std::shared_ptr<const Runner> runner,
             std::shared_ptr<CostModel> costs);

  const SchedulerOptions options_;
  ThreadPool workers_;
  absl::Mutex mu_;
  std::map<const Runner*, std::weak_ptr<CostModel>> costs_ ABSL_GUARDED_BY(mu_);
};

// Runs `task` alone on `runner`, here, unless its deadline has passed, and
// calls its `done`. Returns the execution's timings (zeros if it did not
// run or failed). For schedulers and for tests.
RunTimings RunAlone(const Runner& runner, Task& task);

// Whether an execution expected to cost `cost_ns` should run on the thread
// that has the request rather than be handed to a worker of `workers`: when
// the hand-off would cost more (inline_below_ns -1: measured,
// ThreadPool::handoff_ns), or it is under `inline_below_ns` (> 0); never
// for 0 or an unknown cost.
bool RunsOnCaller(int64_t inline_below_ns, const ThreadPool& workers,
                  double cost_ns);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_SCHEDULER_H_
