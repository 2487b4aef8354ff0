#include "server/core/thread_pool.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <string>

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
  ThreadPool pool("test", 2);
  absl::Mutex mu;
  int arrived = 0;
  std::atomic<int> passed{0};
  // Both closures wait for each other: only two threads make progress.
  for (int i = 0; i < 2; ++i) {
    pool.Schedule([&] {
      absl::MutexLock lock(&mu);
      ++arrived;
      mu.Await(absl::Condition(
          +[](int* a) { return *a == 2; }, &arrived));
      ++passed;
    });
  }
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(
      +[](std::atomic<int>* p) { return p->load() == 2; }, &passed));
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

}  // namespace
}  // namespace twinserve
