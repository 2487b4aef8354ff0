// A fixed pool of worker threads running closures in FIFO order. Used for
// inference (sized to the cores), shadow runs, and slow management work
// (model loads) so none of it runs on gRPC's callback threads.
#ifndef TWINSERVE_SERVER_SERVING_THREAD_POOL_H_
#define TWINSERVE_SERVER_SERVING_THREAD_POOL_H_

#include <atomic>
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
  // Workers neither running a closure nor about to take a queued one.
  int idle_workers() const;

  // What handing a closure to an idle worker costs on this machine: the
  // time from Schedule to the closure starting on a worker that was asleep,
  // the median of the last 16 (ns; 0 until one was seen). Schedulers
  // weigh it against a forward pass to decide whether a hand-off is worth
  // it at all.
  uint64_t handoff_ns() const {
    return handoff_ns_.load(std::memory_order_relaxed);
  }
  // Measures handoff_ns() now with `samples` empty closures, one at a time.
  // REQUIRES: no other work is scheduled meanwhile (e.g. at startup).
  void MeasureHandoff(int samples);

 private:
  struct Item {
    std::function<void()> fn;
    uint64_t scheduled_ns = 0;
  };
  void WorkerLoop();
  void RecordHandoff(uint64_t ns);

  static constexpr int kHandoffWindow = 16;

  const std::string name_;
  mutable absl::Mutex mu_;
  std::deque<Item> queue_ ABSL_GUARDED_BY(mu_);
  int active_ ABSL_GUARDED_BY(mu_) = 0;  // workers running a closure
  std::atomic<uint64_t> handoff_ns_{0};
  absl::Mutex handoff_mu_;
  uint64_t handoff_samples_[kHandoffWindow] ABSL_GUARDED_BY(handoff_mu_) = {};
  uint64_t handoff_next_ ABSL_GUARDED_BY(handoff_mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // workers not yet returned
  std::vector<std::thread> threads_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_THREAD_POOL_H_
