#include "server/serving/batcher.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/common/clock.h"
#include "server/serving/thread_pool.h"

namespace twinserve {
namespace {

int64_t Rows(const Task& t) { return t.rows; }

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
                 Executor execute, int max_inflight,
                 std::shared_ptr<VariantStats> stats)
    : name_(std::move(name)),
      runner_(std::move(runner)),
      execute_(std::move(execute)),
      max_inflight_(std::max(1, max_inflight)),
      stats_(std::move(stats)) {
  thread_ = std::thread([this] {
    SetThreadName("ts-batch");
    Loop();
  });
}

Batcher::~Batcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  thread_.join();
  absl::MutexLock lock(&mu_);
  while (inflight_ > 0) cv_.Wait(&mu_);
}

absl::Status Batcher::Enqueue(Task task, const BatchingConfig& config,
                              bool spread) {
  absl::MutexLock lock(&mu_);
  config_ = config;
  spread_ = spread;
  if (queue_.size() >= static_cast<size_t>(config.queue_capacity)) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the batch queue of ", name_, " is full (", queue_.size(),
                     " requests waiting, queue_capacity ",
                     config.queue_capacity, "); retry later"));
  }
  queue_.push_back(std::move(task));
  QueueChanged(1);
  cv_.SignalAll();
  return absl::OkStatus();
}

void Batcher::QueueChanged(int64_t delta) {
  if (stats_ != nullptr) stats_->AddQueued(delta);
}

size_t Batcher::queue_size() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void Batcher::Loop() {
  absl::MutexLock lock(&mu_);
  while (true) {
    while (!(stopping_ && queue_.empty()) &&
           (queue_.empty() || inflight_ >= max_inflight_)) {
      cv_.Wait(&mu_);
    }
    if (queue_.empty()) return;  // stopping and drained

    // Requests whose deadline passed never run.
    const uint64_t now = NowNs();
    std::vector<Task> expired;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->deadline_ns != 0 && it->deadline_ns <= now) {
        expired.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    if (!expired.empty()) {
      QueueChanged(-static_cast<int64_t>(expired.size()));
      execute_([expired = std::move(expired), now]() mutable {
        for (Task& t : expired) {
          ExecutionInfo info;
          info.queue_ns = now - t.enqueue_ns;
          t.done(
              absl::DeadlineExceededError(absl::StrCat(
                  "the request's deadline passed after ", info.queue_ns / 1000,
                  " us in the batch queue; it was not run")),
              info, t.inputs);
        }
      });
      if (queue_.empty()) continue;
    }

    // Rows that could join the head's batch now.
    const BatchingConfig& c = config_;
    const int64_t max_rows = std::max(1, c.max_batch_size);
    const Task& head = queue_.front();
    int64_t rows = 0;
    for (const Task& t : queue_) {
      if (!BatchableWith(head, t)) continue;
      if (rows + Rows(t) > max_rows && rows > 0) break;
      rows += Rows(t);
    }
    bool ready = rows >= max_rows || stopping_;
    for (int p : c.preferred_batch_sizes) ready = ready || rows >= p;
    const uint64_t due = head.enqueue_ns + c.max_queue_delay_us * 1000;
    if (!ready && now < due) {
      // Wake for the batch's due time or the first deadline, if sooner.
      uint64_t wake = due;
      for (const Task& t : queue_) {
        if (t.deadline_ns != 0) wake = std::min(wake, t.deadline_ns);
      }
      cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(wake - now));
      continue;
    }
    // With preferred sizes and time left, cut at the largest preferred
    // size that fits; otherwise take all that fits.
    int64_t limit = max_rows;
    if (!c.preferred_batch_sizes.empty() && rows < max_rows) {
      for (int p : c.preferred_batch_sizes) {
        if (p <= rows) limit = p;
      }
      if (limit > rows) limit = rows;
    }
    // Spread what waits over the idle workers rather than loading one: on
    // a CPU a batch runs on one worker's threads, and INT8 convolutions
    // hardly get cheaper per row in larger batches, so an idle core is the
    // bigger loss.
    const int64_t idle = max_inflight_ - inflight_;
    if (spread_ && idle > 1 && rows < max_rows) {
      limit = std::min(limit, std::max<int64_t>(1, (rows + idle - 1) / idle));
    }
    std::vector<Task> batch;
    int64_t taken = 0;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (!batch.empty() && !BatchableWith(batch[0], *it)) {
        ++it;
        continue;
      }
      const int64_t r = Rows(*it);
      if (!batch.empty() && taken + r > limit) break;
      taken += r;
      batch.push_back(std::move(*it));
      it = queue_.erase(it);
    }
    ++inflight_;
    QueueChanged(-static_cast<int64_t>(batch.size()));
    execute_([this, batch = std::move(batch)]() mutable {
      RunBatch(std::move(batch));
    });
  }
}

void Batcher::RunBatch(std::vector<Task> batch) {
  const uint64_t start = NowNs();
  ExecutionInfo info;
  info.requests = static_cast<int>(batch.size());
  std::vector<int64_t> rows;
  rows.reserve(batch.size());
  for (const Task& t : batch) {
    rows.push_back(Rows(t));
    info.batch_rows += rows.back();
  }
  absl::StatusOr<std::vector<HostTensor>> outputs;
  if (batch.size() == 1) {
    outputs = runner_->Run(batch[0].inputs, &info.timings);
  } else {
    outputs = runner_->Run(StackInputs(batch), &info.timings);
  }
  if (outputs.ok() && batch.size() == 1) {
    info.queue_ns = start - batch[0].enqueue_ns;
    info.first = true;
    batch[0].done(std::move(outputs), info, batch[0].inputs);
  } else {
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
  // The tasks may hold the last references to this batcher (through their
  // servable): free the slot first, then release them, and touch nothing
  // of `this` after that.
  std::vector<Task> finished = std::move(batch);
  {
    absl::MutexLock lock(&mu_);
    --inflight_;
    cv_.SignalAll();
  }
  finished.clear();
}

}  // namespace twinserve
