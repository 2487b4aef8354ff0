#include "server/serving/thread_pool.h"

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
      queue_.push_back(std::move(fn));
      return;
    }
  }
  fn();  // every worker has returned
}

size_t ThreadPool::queue_size() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void ThreadPool::WorkerLoop() {
  while (true) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](ThreadPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) {  // stopping and drained
        --running_;
        return;
      }
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

}  // namespace twinserve
