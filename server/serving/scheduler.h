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
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/common/tensor.h"
#include "server/runtime/runner.h"
#include "server/serving/batching.h"
#include "server/serving/thread_pool.h"
#include "server/serving/variant_stats.h"

namespace twinserve {

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
  // Unbatched requests of a variant whose mean compute time is below this
  // run on the thread that submits them (a gRPC thread) instead of a
  // worker: for tiny models the two thread hand-offs cost more than the
  // forward pass. 0 turns it off.
  int64_t inline_compute_us = 150;
};

// Makes the schedulers of servables; owns the worker pool they share, so it
// must outlive every scheduler it made.
class SchedulerFactory {
 public:
  explicit SchedulerFactory(SchedulerOptions options);

  // A BatchingScheduler when `config` enables batching, else a
  // DirectScheduler. `name` ("model 'm' version 'fp32'") appears in errors.
  // REQUIRES: `config` passed ValidateBatching for the runner's signature.
  std::shared_ptr<Scheduler> Make(const std::string& name,
                                  std::shared_ptr<const Runner> runner,
                                  std::shared_ptr<VariantStats> stats,
                                  const BatchingConfig& config);

  ThreadPool* workers() { return &workers_; }

 private:
  const uint64_t inline_compute_ns_;
  ThreadPool workers_;
};

// Runs `task` alone on `runner`, here, unless its deadline has passed, and
// calls its `done`. For schedulers and for tests.
void RunAlone(const Runner& runner, Task& task);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_SCHEDULER_H_
