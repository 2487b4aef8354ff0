#include "server/serving/thread_pool.h"

#include <algorithm>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "server/common/clock.h"

namespace twinserve {

ThreadPool::ThreadPool(std::string name, int num_threads,
                       std::function<void()> on_start)
    : name_(std::move(name)) {
  {
    absl::MutexLock lock(&mu_);
    running_ = num_threads;
  }
  threads_.reserve(num_threads);
  for (int i = 0; i < num_threads; ++i) {
    threads_.emplace_back([this, on_start] {
      SetThreadName("ts-" + name_);
      if (on_start) on_start();
      WorkerLoop();
    });
  }
}

ThreadPool::~ThreadPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::Schedule(std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_ || running_ > 0) {
      queue_.push_back({std::move(fn), NowNs()});
      return;
    }
  }
  fn();  // every worker has returned
}

int ThreadPool::idle_workers() const {
  absl::MutexLock lock(&mu_);
  const int idle = static_cast<int>(threads_.size()) - active_ -
                   static_cast<int>(queue_.size());
  return idle > 0 ? idle : 0;
}

void ThreadPool::MeasureHandoff(int samples) {
  for (int i = 0; i < samples; ++i) {
    // Long enough for the workers to be asleep again: what is measured is
    // a hand-off to a sleeping worker (a busy one records nothing).
    absl::SleepFor(absl::Microseconds(500));
    absl::Notification done;
    Schedule([&done] { done.Notify(); });
    done.WaitForNotification();
  }
}

void ThreadPool::RecordHandoff(uint64_t ns) {
  // The median of the last kHandoffWindow wake-ups: a worker descheduled
  // for milliseconds on a busy machine does not make every later decision
  // think hand-offs cost that much.
  absl::MutexLock lock(&handoff_mu_);
  handoff_samples_[handoff_next_++ % kHandoffWindow] = ns;
  const size_t n = std::min<uint64_t>(handoff_next_, kHandoffWindow);
  uint64_t sorted[kHandoffWindow];
  std::copy(handoff_samples_, handoff_samples_ + n, sorted);
  std::nth_element(sorted, sorted + n / 2, sorted + n);
  handoff_ns_.store(sorted[n / 2], std::memory_order_relaxed);
}

size_t ThreadPool::queue_size() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void ThreadPool::WorkerLoop() {
  bool ran = false;
  while (true) {
    Item item;
    bool slept = false;
    {
      absl::MutexLock lock(&mu_);
      if (ran) --active_;
      if (queue_.empty() && !stopping_) {
        slept = true;
        mu_.Await(absl::Condition(
            +[](ThreadPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
              return p->stopping_ || !p->queue_.empty();
            },
            this));
      }
      if (queue_.empty()) {  // stopping and drained
        --running_;
        return;
      }
      item = std::move(queue_.front());
      queue_.pop_front();
      ++active_;
      ran = true;
    }
    if (slept) RecordHandoff(NowNs() - item.scheduled_ns);
    item.fn();
  }
}

}  // namespace twinserve
