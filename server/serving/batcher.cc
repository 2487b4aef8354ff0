#include "server/serving/batcher.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/common/clock.h"

namespace twinserve {
namespace {

// One decision in this many tries another batch size than the cost model's,
// so that the cost of an option not taken lately is measured again.
constexpr uint64_t kExploreEvery = 64;

}  // namespace

bool BatchableWith(const Task& a, const Task& b) {
  if (a.inputs.size() != b.inputs.size()) return false;
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    const HostTensor& x = a.inputs[i];
    const HostTensor& y = b.inputs[i];
    if (x.dtype != y.dtype || x.shape.size() != y.shape.size() ||
        x.shape.empty() ||
        !std::equal(x.shape.begin() + 1, x.shape.end(), y.shape.begin() + 1)) {
      return false;
    }
  }
  return true;
}

std::vector<HostTensor> StackInputs(const std::vector<Task>& batch) {
  std::vector<HostTensor> out;
  const size_t n = batch[0].inputs.size();
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const HostTensor& first = batch[0].inputs[i];
    size_t bytes = 0;
    int64_t rows = 0;
    for (const Task& t : batch) {
      bytes += t.inputs[i].byte_size;
      rows += t.inputs[i].shape[0];
    }
    // 64-byte aligned so the runner wraps it without another copy.
    char* buffer =
        static_cast<char*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    size_t offset = 0;
    for (const Task& t : batch) {
      std::memcpy(buffer + offset, t.inputs[i].data, t.inputs[i].byte_size);
      offset += t.inputs[i].byte_size;
    }
    HostTensor stacked;
    stacked.name = first.name;
    stacked.dtype = first.dtype;
    stacked.shape = first.shape;
    stacked.shape[0] = rows;
    stacked.data = buffer;
    stacked.byte_size = bytes;
    stacked.owner = std::shared_ptr<const void>(buffer, std::free);
    out.push_back(std::move(stacked));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<HostTensor>>> SplitOutputs(
    const std::vector<HostTensor>& outputs, const std::vector<int64_t>& rows) {
  int64_t total = 0;
  for (int64_t r : rows) total += r;
  std::vector<std::vector<HostTensor>> out(rows.size());
  for (auto& v : out) v.reserve(outputs.size());
  for (const HostTensor& o : outputs) {
    if (o.shape.empty() || o.shape[0] != total) {
      return absl::InternalError(absl::StrCat(
          "output '", o.name, "' has shape ", ShapeToString(o.shape),
          " for a batch of ", total,
          " rows; a batchable model must return one row per input row"));
    }
    const size_t row_bytes = total == 0 ? 0 : o.byte_size / total;
    size_t offset = 0;
    for (size_t i = 0; i < rows.size(); ++i) {
      HostTensor part;
      part.name = o.name;
      part.dtype = o.dtype;
      part.shape = o.shape;
      part.shape[0] = rows[i];
      part.data = o.data + offset;
      part.byte_size = row_bytes * rows[i];
      part.owner = o.owner;
      offset += part.byte_size;
      out[i].push_back(std::move(part));
    }
  }
  return out;
}

Batcher::Batcher(std::string name, std::shared_ptr<const Runner> runner,
                 ThreadPool* pool, std::shared_ptr<VariantStats> stats,
                 std::shared_ptr<CostModel> costs, BatcherOptions options)
    : name_(std::move(name)),
      runner_(std::move(runner)),
      pool_(pool),
      stats_(std::move(stats)),
      costs_(std::move(costs)),
      options_(std::move(options)) {}

Batcher::~Batcher() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
  cv_.SignalAll();  // executors waiting for company go at once
  // Every queued task has an executor coming (Enqueue starts one), so
  // waiting for the executors drains the queue too.
  mu_.Await(absl::Condition(
      +[](Batcher* b) ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) {
        return b->executors_ == 0 && b->queue_.empty() && b->ready_.empty();
      },
      this));
}

size_t Batcher::queue_size() const {
  absl::MutexLock lock(&mu_);
  size_t n = queue_.size();
  for (const auto& b : ready_) n += b.size();
  return n;
}

bool Batcher::RunHere(int64_t rows) const {
  return RunsOnCaller(options_.inline_below_ns, *pool_,
                      costs_->Estimate(static_cast<int>(rows), 1));
}

absl::Status Batcher::Enqueue(Task task) {
  const int64_t rows = task.rows;
  bool start = false;
  {
    absl::MutexLock lock(&mu_);
    const BatchingConfig& c = options_.config;
    if (queue_.size() >= static_cast<size_t>(c.queue_capacity)) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the batch queue of ", name_, " is full (",
                       queue_.size(), " requests waiting, queue_capacity ",
                       c.queue_capacity, "); retry later"));
    }
    queue_.push_back(std::move(task));
    stats_->AddQueued(1);
    if (executors_ == busy_ && executors_ < options_.max_executors) {
      ++executors_;
      start = true;
    } else {
      cv_.Signal();  // an executor gathering company may have enough now
    }
  }
  if (!start) return absl::OkStatus();
  if (RunHere(rows)) {
    Drain(/*on_caller=*/true);  // nothing of `this` after: see Drain
  } else {
    StartOnPool(1);
  }
  return absl::OkStatus();
}

void Batcher::StartOnPool(int n) {
  for (int i = 0; i < n; ++i) pool_->Schedule([this] { Drain(false); });
}

bool Batcher::WorthWaiting(int64_t rows) const {
  if (options_.policy != BatchPolicy::kAdaptive || !costs_->Known()) {
    return true;  // as configured
  }
  // Company is worth waiting for only where a fuller batch costs less per
  // row than these rows now (on a CPU whose kernels gain nothing from rows,
  // waiting only adds latency), and by more than a hand-off: a request
  // that waits is answered from a worker's thread, which costs each
  // request about one hand-off (a tiny model gains less than that).
  const int concurrency = busy_ + 1;
  const double now_per_row =
      costs_->Estimate(static_cast<int>(rows), concurrency) / rows;
  const int max_rows = std::max(1, options_.config.max_batch_size);
  const double full_per_row =
      costs_->Estimate(max_rows, concurrency) / max_rows;
  return full_per_row < now_per_row * CostModel::kBetter &&
         now_per_row - full_per_row > static_cast<double>(pool_->handoff_ns());
}

bool Batcher::NextBatch(bool on_caller, std::vector<Task>* batch,
                        std::vector<Task>* expired) {
  const BatchingConfig& c = options_.config;
  const int64_t max_rows = std::max(1, c.max_batch_size);
  for (;;) {
    if (!ready_.empty()) {
      *batch = std::move(ready_.front());
      ready_.pop_front();
      return true;
    }
    // Requests whose deadline passed never run.
    const uint64_t now = NowNs();
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->deadline_ns != 0 && it->deadline_ns <= now) {
        expired->push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (!expired->empty()) {
      stats_->AddQueued(-static_cast<int64_t>(expired->size()));
      return true;
    }
    if (queue_.empty()) return false;

    // Rows that could join the head's batch now.
    auto rows_ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      int64_t rows = 0;
      const Task& head = queue_.front();
      for (const Task& t : queue_) {
        if (!BatchableWith(head, t)) continue;
        if (rows + t.rows > max_rows && rows > 0) break;
        rows += t.rows;
      }
      return rows;
    };
    auto preferred = [&](int64_t rows) {
      for (int p : c.preferred_batch_sizes) {
        if (rows >= p) return true;
      }
      return false;
    };
    // Wait for company within the oldest request's delay (or its
    // deadline, if sooner).
    const int64_t ready = rows_ready();
    if (c.max_queue_delay_us > 0 && !stopping_ && ready < max_rows &&
        !preferred(ready) && WorthWaiting(ready)) {
      const uint64_t due =
          queue_.front().enqueue_ns + c.max_queue_delay_us * 1000;
      uint64_t wake = due;
      for (const Task& t : queue_) {
        if (t.deadline_ns != 0) wake = std::min(wake, t.deadline_ns);
      }
      if (now < wake) {
        if (on_caller) return false;  // a worker waits instead
        cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(wake - now));
        continue;  // look again: more rows, a deadline, or a cut batch
      }
      if (now < due) continue;  // a deadline passed: drop it first
    }

    // The rows on offer: with preferred sizes and room left, the largest
    // preferred size that fits.
    int64_t limit = std::min(ready, max_rows);
    if (!c.preferred_batch_sizes.empty() && ready < max_rows) {
      int64_t p_limit = 0;
      for (int p : c.preferred_batch_sizes) {
        if (p <= ready) p_limit = p;
      }
      if (p_limit > 0) limit = p_limit;
    }
    // Executors free to take a share: those looking at the queue besides
    // this one, and workers that may start.
    const int idle_executors = executors_ - busy_ - 1;
    const int free =
        idle_executors +
        std::min(options_.max_executors - executors_, pool_->idle_workers());
    CostModel::Plan plan{1, static_cast<int>(limit)};
    switch (options_.policy) {
      case BatchPolicy::kFixed:
        break;
      case BatchPolicy::kSpread:
        plan.executions = static_cast<int>(std::min<int64_t>(limit, 1 + free));
        plan.rows_each =
            static_cast<int>((limit + plan.executions - 1) / plan.executions);
        break;
      case BatchPolicy::kAdaptive: {
        plan = costs_->Choose(static_cast<int>(limit), busy_, free,
                              static_cast<double>(pool_->handoff_ns()));
        // Now and then another batch size, so that what is not chosen
        // lately stays measured (the machine changes).
        if (limit > 1 && ++decisions_ % kExploreEvery == 0) {
          const int most = static_cast<int>(limit) / plan.executions;
          plan.rows_each = plan.rows_each < most
                               ? std::min(2 * plan.rows_each, most)
                               : std::max(1, plan.rows_each / 2);
        }
        break;
      }
    }
    // Cut up to `executions` batches of about `rows_each` rows: this
    // executor runs the first, the others go to ready_; the rest waits.
    std::vector<std::vector<Task>> cuts(plan.executions);
    size_t cut = 0;
    int64_t in_cut = 0;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (!cuts[0].empty() && !BatchableWith(cuts[0][0], *it)) {
        ++it;
        continue;
      }
      if (in_cut > 0 && in_cut + it->rows > plan.rows_each) {
        if (++cut == cuts.size()) break;
        in_cut = 0;
      }
      in_cut += it->rows;
      cuts[cut].push_back(std::move(*it));
      it = queue_.erase(it);
    }
    *batch = std::move(cuts[0]);
    int extra = 0;
    for (size_t k = 1; k < cuts.size(); ++k) {
      if (cuts[k].empty()) continue;
      ready_.push_back(std::move(cuts[k]));
      ++extra;
    }
    if (extra > 0) {
      cv_.SignalAll();  // idle executors take their share first
      const int start = std::max(0, extra - idle_executors);
      executors_ += start;
      if (start > 0) {
        mu_.Unlock();
        StartOnPool(start);
        mu_.Lock();
      }
    }
    return true;
  }
}

void Batcher::Drain(bool on_caller) {
  // The previous batch's tasks: they may hold the last references to this
  // batcher, so they go only while queued tasks still hold some, or after
  // this executor stopped counting (then nothing of `this` is touched).
  std::vector<Task> finished;
  mu_.Lock();
  for (;;) {
    std::vector<Task> batch, expired;
    if (!NextBatch(on_caller, &batch, &expired)) {
      const bool handed_off = on_caller && (!queue_.empty() || !ready_.empty());
      if (!handed_off) --executors_;
      cv_.SignalAll();
      mu_.Unlock();
      // A request that must wait for company waits on a worker, not on the
      // thread that submitted it (this executor's count goes with it).
      if (handed_off) StartOnPool(1);
      finished.clear();
      return;
    }
    finished.clear();  // queued tasks hold references: not the last ones
    if (!expired.empty()) {
      mu_.Unlock();
      const uint64_t now = NowNs();
      for (Task& t : expired) {
        ExecutionInfo info;
        info.queue_ns = now - t.enqueue_ns;
        t.done(absl::DeadlineExceededError(absl::StrCat(
                   "the request's deadline passed after ", info.queue_ns / 1000,
                   " us in the batch queue; it was not run")),
               info, t.inputs);
      }
      finished = std::move(expired);
      mu_.Lock();
      continue;
    }
    stats_->AddQueued(-static_cast<int64_t>(batch.size()));
    const int running = ++busy_;
    mu_.Unlock();
    RunBatch(batch, running);
    finished = std::move(batch);
    mu_.Lock();
    --busy_;
  }
}

void Batcher::RunBatch(std::vector<Task>& batch, int running) {
  const uint64_t start = NowNs();
  ExecutionInfo info;
  info.requests = static_cast<int>(batch.size());
  std::vector<int64_t> rows;
  rows.reserve(batch.size());
  for (const Task& t : batch) {
    rows.push_back(t.rows);
    info.batch_rows += t.rows;
  }
  absl::StatusOr<std::vector<HostTensor>> outputs =
      batch.size() == 1 ? runner_->Run(batch[0].inputs, &info.timings)
                        : runner_->Run(StackInputs(batch), &info.timings);
  if (outputs.ok()) {
    costs_->Observe(
        static_cast<int>(info.batch_rows), running,
        info.timings.input_ns + info.timings.infer_ns + info.timings.output_ns);
  }
  if (outputs.ok() && batch.size() == 1) {
    info.queue_ns = start - batch[0].enqueue_ns;
    info.first = true;
    batch[0].done(std::move(outputs), info, batch[0].inputs);
    return;
  }
  absl::StatusOr<std::vector<std::vector<HostTensor>>> parts =
      outputs.ok() ? SplitOutputs(*outputs, rows) : outputs.status();
  for (size_t i = 0; i < batch.size(); ++i) {
    info.queue_ns = start - batch[i].enqueue_ns;
    info.first = i == 0;
    if (parts.ok()) {
      batch[i].done(std::move((*parts)[i]), info, batch[i].inputs);
    } else {
      batch[i].done(parts.status(), info, batch[i].inputs);
    }
  }
}

}  // namespace twinserve
