#include "server/serving/scheduler.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/serving/batcher.h"

namespace twinserve {
namespace {

// Batches whose execution takes at least this long are spread over idle
// workers (see Batcher::Enqueue).
constexpr uint64_t kSpreadComputeNs = 500'000;

// Every request alone: inline for tiny models, else on the worker pool.
class DirectScheduler : public Scheduler {
 public:
  DirectScheduler(std::string name, std::shared_ptr<const Runner> runner,
                  std::shared_ptr<VariantStats> stats, ThreadPool* workers,
                  uint64_t inline_compute_ns, int queue_capacity)
      : name_(std::move(name)),
        runner_(std::move(runner)),
        stats_(std::move(stats)),
        workers_(workers),
        inline_compute_ns_(inline_compute_ns),
        queue_capacity_(queue_capacity) {}

  absl::Status Submit(Task task) override {
    // Tiny models run here, sparing the hand-offs to a worker and back;
    // decided on the variant's mean compute time once it has some.
    if (inline_compute_ns_ > 0 && stats_->Executions() >= 8 &&
        stats_->MeanComputeNs() < inline_compute_ns_) {
      RunAlone(*runner_, task);
      return absl::OkStatus();
    }
    if (workers_->queue_size() >= static_cast<size_t>(queue_capacity_)) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the inference queue is full (", queue_capacity_,
                       " requests waiting) for ", name_, "; retry later"));
    }
    stats_->AddQueued(1);
    // The closure holds no reference to this scheduler: the task's
    // callback keeps what it needs (the servable) alive.
    workers_->Schedule(
        [runner = runner_, stats = stats_, task = std::move(task)]() mutable {
          stats->AddQueued(-1);
          RunAlone(*runner, task);
        });
    return absl::OkStatus();
  }

 private:
  const std::string name_;
  const std::shared_ptr<const Runner> runner_;
  const std::shared_ptr<VariantStats> stats_;
  ThreadPool* const workers_;
  const uint64_t inline_compute_ns_;
  const int queue_capacity_;
};

// Requests wait for company in a Batcher; a request larger than the batch
// limit runs alone.
class BatchingScheduler : public Scheduler {
 public:
  BatchingScheduler(std::string name, std::shared_ptr<const Runner> runner,
                    std::shared_ptr<VariantStats> stats, ThreadPool* workers,
                    BatchingConfig config, uint64_t inline_compute_ns)
      : stats_(stats),
        config_(std::move(config)),
        alone_(name, runner, stats, workers, inline_compute_ns,
               config_.queue_capacity),
        batcher_(
            name, std::move(runner),
            [workers](std::function<void()> fn) {
              workers->Schedule(std::move(fn));
            },
            workers->num_threads(), std::move(stats)) {}

  absl::Status Submit(Task task) override {
    if (task.rows > config_.max_batch_size) {
      return alone_.Submit(std::move(task));
    }
    // Long executions are split over idle workers; short ones are bound by
    // per-request costs, where fewer, larger batches win.
    const bool spread = stats_->MeanComputeNs() >= kSpreadComputeNs;
    return batcher_.Enqueue(std::move(task), config_, spread);
  }

 private:
  const std::shared_ptr<VariantStats> stats_;
  const BatchingConfig config_;
  DirectScheduler alone_;
  Batcher batcher_;  // last: drained first when the scheduler goes
};

}  // namespace

void RunAlone(const Runner& runner, Task& task) {
  ExecutionInfo info;
  info.queue_ns = NowNs() - task.enqueue_ns;
  info.first = true;
  info.requests = 1;
  info.batch_rows = task.rows;
  if (task.deadline_ns != 0 && NowNs() >= task.deadline_ns) {
    task.done(absl::DeadlineExceededError(absl::StrCat(
                  "the request's deadline passed after ", info.queue_ns / 1000,
                  " us in the queue; it was not run")),
              info, task.inputs);
    return;
  }
  auto outputs = runner.Run(task.inputs, &info.timings);
  task.done(std::move(outputs), info, task.inputs);
}

SchedulerFactory::SchedulerFactory(SchedulerOptions options)
    : inline_compute_ns_(std::max<int64_t>(0, options.inline_compute_us) *
                         1000),
      workers_("infer", std::max(1, options.worker_threads)) {}

std::shared_ptr<Scheduler> SchedulerFactory::Make(
    const std::string& name, std::shared_ptr<const Runner> runner,
    std::shared_ptr<VariantStats> stats, const BatchingConfig& config) {
  if (config.enabled()) {
    return std::make_shared<BatchingScheduler>(name, std::move(runner),
                                               std::move(stats), &workers_,
                                               config, inline_compute_ns_);
  }
  return std::make_shared<DirectScheduler>(
      name, std::move(runner), std::move(stats), &workers_, inline_compute_ns_,
      config.queue_capacity);
}

}  // namespace twinserve
