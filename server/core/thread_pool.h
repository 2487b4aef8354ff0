// A fixed pool of worker threads running closures in FIFO order. Used for
// inference (sized to the cores) and for slow management work (model loads)
// so neither runs on gRPC's callback threads.
#ifndef TWINSERVE_SERVER_CORE_THREAD_POOL_H_
#define TWINSERVE_SERVER_CORE_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace twinserve {

// Names the calling thread so `top -H`, perf and gdb tell twinserve's
// threads apart. Linux keeps the first 15 bytes.
void SetThreadName(const std::string& name);

// Workers are named "ts-<name>".
class ThreadPool {
 public:
  // REQUIRES: num_threads >= 1. `on_start`, if set, runs first on each
  // worker thread (e.g. to lower its scheduling priority).
  ThreadPool(std::string name, int num_threads,
             std::function<void()> on_start = nullptr);
  // Runs every queued closure, then joins the threads.
  ~ThreadPool();

  void Schedule(std::function<void()> fn);
  // Closures queued and not yet started.
  size_t queue_size() const;
  int num_threads() const { return static_cast<int>(threads_.size()); }

 private:
  void WorkerLoop();

  const std::string name_;
  mutable absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_THREAD_POOL_H_
