#include "server/serving/scheduler.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/common/clock.h"
#include "server/serving/batcher.h"

namespace twinserve {
namespace {

// Hand-offs to an idle worker measured at startup (more come from use).
constexpr int kHandoffSamples = 16;

// Every request alone: on the submitting thread for executions shorter
// than a hand-off, else on the worker pool. Its executions feed the
// runner's cost model (batch size 1, by how many run at once).
class DirectScheduler : public Scheduler {
 public:
  DirectScheduler(std::string name, std::shared_ptr<const Runner> runner,
                  std::shared_ptr<VariantStats> stats, ThreadPool* workers,
                  std::shared_ptr<CostModel> costs, int64_t inline_below_ns,
                  int queue_capacity)
      : name_(std::move(name)),
        runner_(std::move(runner)),
        stats_(std::move(stats)),
        workers_(workers),
        shared_(std::make_shared<Shared>(std::move(costs))),
        inline_below_ns_(inline_below_ns),
        queue_capacity_(queue_capacity) {}

  absl::Status Submit(Task task) override {
    // Decided on the variant's mean execution time once it has some.
    if (stats_->Executions() >= 8 &&
        RunsOnCaller(inline_below_ns_, *workers_,
                     static_cast<double>(stats_->MeanComputeNs()))) {
      Run(*runner_, *shared_, task);
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
    workers_->Schedule([runner = runner_, stats = stats_, shared = shared_,
                        task = std::move(task)]() mutable {
      stats->AddQueued(-1);
      Run(*runner, *shared, task);
    });
    return absl::OkStatus();
  }

 private:
  // What queued closures share with the scheduler (they may outlive it).
  struct Shared {
    explicit Shared(std::shared_ptr<CostModel> c) : costs(std::move(c)) {}
    const std::shared_ptr<CostModel> costs;
    std::atomic<int> running{0};
  };

  static void Run(const Runner& runner, Shared& shared, Task& task) {
    const int concurrency = shared.running.fetch_add(1) + 1;
    const int rows = static_cast<int>(task.rows);
    const RunTimings t = RunAlone(runner, task);
    shared.running.fetch_sub(1);
    const uint64_t ns = t.input_ns + t.infer_ns + t.output_ns;
    if (ns > 0 && rows <= shared.costs->max_rows()) {
      shared.costs->Observe(rows, concurrency, ns);
    }
  }

  const std::string name_;
  const std::shared_ptr<const Runner> runner_;
  const std::shared_ptr<VariantStats> stats_;
  ThreadPool* const workers_;
  const std::shared_ptr<Shared> shared_;
  const int64_t inline_below_ns_;
  const int queue_capacity_;
};

// Requests wait for company in a Batcher; a request larger than the batch
// limit runs alone.
class BatchingScheduler : public Scheduler {
 public:
  BatchingScheduler(std::string name, std::shared_ptr<const Runner> runner,
                    std::shared_ptr<VariantStats> stats, ThreadPool* workers,
                    std::shared_ptr<CostModel> costs, BatcherOptions options)
      : max_rows_(options.config.max_batch_size),
        alone_(name, runner, stats, workers, costs, options.inline_below_ns,
               options.config.queue_capacity),
        batcher_(name, std::move(runner), workers, std::move(stats),
                 std::move(costs), std::move(options)) {}

  absl::Status Submit(Task task) override {
    if (task.rows > max_rows_) return alone_.Submit(std::move(task));
    return batcher_.Enqueue(std::move(task));
  }

 private:
  const int64_t max_rows_;
  DirectScheduler alone_;
  Batcher batcher_;  // last: drained first when the scheduler goes
};

// Inputs shaped like the runner's for `rows` rows (other free dims 1):
// what the probe runs. Values are a fixed pattern, not zeros, so that no
// kernel takes a shortcut real inputs would not.
std::vector<HostTensor> ProbeInputs(const Signature& sig, int64_t rows) {
  std::vector<HostTensor> out;
  for (const TensorSpec& spec : sig.inputs) {
    Shape shape = spec.Example(1);
    if (!shape.empty()) shape[0] = rows;
    const int64_t n = ElementCount(shape);
    std::string bytes(n * DataTypeSize(spec.dtype), '\0');
    if (spec.dtype == DataType::kFp32) {
      float* f = reinterpret_cast<float*>(bytes.data());
      for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(i % 17) / 17;
    }
    out.push_back(HostTensor::Owned(spec.name, spec.dtype, std::move(shape),
                                    std::move(bytes)));
  }
  return out;
}

}  // namespace

bool RunsOnCaller(int64_t inline_below_ns, const ThreadPool& workers,
                  double cost_ns) {
  if (inline_below_ns == 0 || cost_ns <= 0) return false;
  const double limit = inline_below_ns > 0
                           ? static_cast<double>(inline_below_ns)
                           : static_cast<double>(workers.handoff_ns());
  return cost_ns < limit;
}

RunTimings RunAlone(const Runner& runner, Task& task) {
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
    return RunTimings{};
  }
  auto outputs = runner.Run(task.inputs, &info.timings);
  const RunTimings timings = outputs.ok() ? info.timings : RunTimings{};
  task.done(std::move(outputs), info, task.inputs);
  return timings;
}

SchedulerFactory::SchedulerFactory(SchedulerOptions options)
    : options_(options),
      workers_("infer", std::max(1, options.worker_threads)) {
  workers_.MeasureHandoff(kHandoffSamples);
}

std::shared_ptr<CostModel> SchedulerFactory::CostsFor(const Runner* runner,
                                                      int max_rows) {
  absl::MutexLock lock(&mu_);
  // Forget the models of runners gone.
  for (auto it = costs_.begin(); it != costs_.end();) {
    it = it->second.expired() ? costs_.erase(it) : std::next(it);
  }
  std::shared_ptr<CostModel> costs = costs_[runner].lock();
  if (costs == nullptr || costs->max_rows() < max_rows) {
    auto grown = std::make_shared<CostModel>(max_rows, workers_.num_threads());
    if (costs != nullptr) {
      for (const auto& [rows, ns] : costs->Curve()) {
        grown->Observe(rows, 1, static_cast<uint64_t>(ns));
      }
    }
    costs = grown;
    costs_[runner] = costs;
  }
  return costs;
}

void SchedulerFactory::Probe(std::shared_ptr<const Runner> runner,
                             std::shared_ptr<CostModel> costs) {
  const uint64_t deadline = NowNs() + options_.probe_budget_ms * 1'000'000ull;
  for (int64_t rows = 1; rows <= costs->max_rows();
       rows = rows == costs->max_rows()
                  ? rows + 1
                  : std::min<int64_t>(rows * 2, costs->max_rows())) {
    if (costs->Measured(static_cast<int>(rows))) continue;
    const std::vector<HostTensor> in = ProbeInputs(runner->signature(), rows);
    std::vector<uint64_t> ns;
    // One warm-up run, then up to three; live executions measure the rest
    // once the budget is spent.
    for (int run = 0; run < 4 && NowNs() < deadline; ++run) {
      RunTimings t;
      if (!runner->Run(in, &t).ok()) return;
      if (run > 0) ns.push_back(t.input_ns + t.infer_ns + t.output_ns);
    }
    if (ns.empty()) return;
    std::sort(ns.begin(), ns.end());
    costs->Observe(static_cast<int>(rows), 1, ns[ns.size() / 2]);
  }
}

std::shared_ptr<Scheduler> SchedulerFactory::Make(
    const std::string& name, std::shared_ptr<const Runner> runner,
    std::shared_ptr<VariantStats> stats, const BatchingConfig& config) {
  const int64_t inline_below_ns =
      options_.inline_compute_us < 0 ? -1 : options_.inline_compute_us * 1000;
  std::shared_ptr<CostModel> costs =
      CostsFor(runner.get(), std::max(1, config.max_batch_size));
  if (!config.enabled()) {
    return std::make_shared<DirectScheduler>(
        name, std::move(runner), std::move(stats), &workers_, std::move(costs),
        inline_below_ns, config.queue_capacity);
  }
  if (!costs->Measured(2)) {
    // Batch sizes past 1 measured on a worker, so that the probe never
    // runs beside more executions than there are workers; the scheduler
    // works meanwhile (batch 1 is measured by live executions).
    workers_.Schedule([this, runner, costs] { Probe(runner, costs); });
  }
  BatcherOptions options;
  options.config = config;
  options.max_executors = workers_.num_threads();
  options.policy = options_.policy;
  options.inline_below_ns = inline_below_ns;
  return std::make_shared<BatchingScheduler>(
      name, std::move(runner), std::move(stats), &workers_, std::move(costs),
      std::move(options));
}

}  // namespace twinserve
