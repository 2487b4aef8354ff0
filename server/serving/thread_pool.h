// A fixed pool of worker threads running closures in FIFO order. Used for
// inference (sized to the cores), shadow runs, and slow management work
// (model loads) so none of it runs on gRPC's callback threads.
#ifndef TWINSERVE_SERVER_SERVING_THREAD_POOL_H_
#define TWINSERVE_SERVER_SERVING_THREAD_POOL_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/common/thread_name.h"

namespace twinserve {

// Workers are named "ts-<name>".
class ThreadPool {
 public:
  // REQUIRES: num_threads >= 1. `on_start`, if set, runs first on each
  // worker thread (e.g. to lower its scheduling priority).
  ThreadPool(std::string name, int num_threads,
             std::function<void()> on_start = nullptr);
  // Runs every queued closure, then joins the threads.
  ~ThreadPool();

  // Runs `fn` on a worker. Closures scheduled while the pool is being
  // destroyed still run: on a worker if one is left, else right here.
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
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // workers not yet returned
  std::vector<std::thread> threads_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_THREAD_POOL_H_
