#include "server/serving/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace twinserve {
namespace {

TEST(ThreadPoolTest, RunsEverythingBeforeDestruction) {
  std::atomic<int> done{0};
  {
    ThreadPool pool("test", 3);
    EXPECT_EQ(pool.num_threads(), 3);
    for (int i = 0; i < 1000; ++i) pool.Schedule([&] { ++done; });
  }
  EXPECT_EQ(done.load(), 1000);
}

TEST(ThreadPoolTest, RunsConcurrently) {
  absl::Mutex mu;
  int arrived = 0;
  int passed = 0;
  {
    ThreadPool pool("test", 2);
    // Both closures wait for each other: they pass only if two threads run
    // them at once.
    for (int i = 0; i < 2; ++i) {
      pool.Schedule([&] {
        absl::MutexLock lock(&mu);
        ++arrived;
        mu.AwaitWithTimeout(absl::Condition(
                                +[](int* a) { return *a >= 2; }, &arrived),
                            absl::Seconds(10));
        if (arrived >= 2) ++passed;
      });
    }
    absl::MutexLock lock(&mu);
    const bool both =
        mu.AwaitWithTimeout(absl::Condition(
                                +[](int* a) { return *a >= 2; }, &arrived),
                            absl::Seconds(10));
    EXPECT_TRUE(both) << "only " << arrived << " closure(s) started";
    arrived = 2;  // releases a lone waiter so the pool can be destroyed
  }
  EXPECT_EQ(passed, 2);
}

TEST(ThreadPoolTest, ClosuresScheduledDuringDestructionStillRun) {
  std::atomic<int> done{0};
  ThreadPool* pool = nullptr;
  // Each closure schedules the next, as a batch's completion schedules work
  // while the server shuts down.
  std::function<void(int)> chain = [&](int left) {
    ++done;
    if (left > 0) pool->Schedule([&chain, left] { chain(left - 1); });
  };
  {
    ThreadPool p("test", 1);
    pool = &p;
    pool->Schedule([&] { chain(99); });
  }
  EXPECT_EQ(done.load(), 100);
}

TEST(ThreadPoolTest, OnStartRunsOnEveryWorkerBeforeItsWork) {
  // Each worker lowers itself to SCHED_IDLE (as the shadow pool does); the
  // closures then observe the policy on whichever worker runs them.
  std::atomic<int> started{0};
  std::atomic<int> idle_runs{0};
  {
    ThreadPool pool("idle", 2, [&] {
      sched_param param{};
      ASSERT_EQ(pthread_setschedparam(pthread_self(), SCHED_IDLE, &param), 0);
      ++started;
    });
    for (int i = 0; i < 20; ++i) {
      pool.Schedule([&] {
        int policy = 0;
        sched_param param{};
        pthread_getschedparam(pthread_self(), &policy, &param);
        if (policy == SCHED_IDLE) ++idle_runs;
      });
    }
  }
  EXPECT_EQ(started, 2);
  EXPECT_EQ(idle_runs, 20);
}

TEST(ThreadPoolTest, WorkersAreNamedForTopAndPerf) {
  std::string seen;
  {
    ThreadPool pool("infer", 1);
    pool.Schedule([&] {
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof(name));
      seen = name;
    });
  }
  EXPECT_EQ(seen, "ts-infer");
}

TEST(ThreadPoolTest, MeasuresHandOffsAndCountsIdleWorkers) {
  ThreadPool pool("w", 2);
  EXPECT_EQ(pool.handoff_ns(), 0u);
  pool.MeasureHandoff(8);
  EXPECT_GT(pool.handoff_ns(), 0u);
  EXPECT_LT(pool.handoff_ns(), 1'000'000'000u);
  // Idle: neither running a closure nor about to take a queued one (a
  // worker that just finished one is idle once it is back for more).
  while (pool.idle_workers() != 2) std::this_thread::yield();
  absl::Notification release, started;
  pool.Schedule([&] {
    started.Notify();
    release.WaitForNotification();
  });
  started.WaitForNotification();
  EXPECT_EQ(pool.idle_workers(), 1);
  pool.Schedule([&] { release.WaitForNotification(); });
  EXPECT_EQ(pool.idle_workers(), 0);
  release.Notify();
}

}  // namespace
}  // namespace twinserve
