#include "server/core/jobs.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::NewTempDir;

TEST(JobManagerTest, SubscribersHearStatusesInVersionOrder) {
  // A subscriber's first status was delivered outside the lock, so a newer
  // one (even the terminal one) could reach it first; WatchJob then kept
  // the stale status and never finished.
  JobManager jobs(NewTempDir("jobs"));
  for (int round = 0; round < 100; ++round) {
    absl::Notification go;
    auto job = jobs.Start(absl::StrCat("m", round), "int8", "quantize",
                          [&](JobContext& ctx) -> absl::StatusOr<std::string> {
                            go.WaitForNotification();
                            // A new stage each time: every call reaches
                            // subscribers.
                            for (int i = 0; i < 200; ++i)
                              ctx.Progress(absl::StrCat(i), i, 200);
                            return std::string("done");
                          });
    ASSERT_TRUE(job.ok());
    absl::Mutex mu;
    std::vector<std::vector<JobStatus>> seen(4);
    std::vector<uint64_t> tokens(4);
    std::vector<std::thread> subscribers;
    go.Notify();
    for (int s = 0; s < 4; ++s) {
      subscribers.emplace_back([&, s] {
        auto token = jobs.Subscribe(job->id, [&, s](const JobStatus& st) {
          absl::MutexLock lock(&mu);
          seen[s].push_back(st);
        });
        ASSERT_TRUE(token.ok());
        tokens[s] = *token;
      });
    }
    for (auto& t : subscribers) t.join();
    for (int i = 0; i < 1000 && !IsTerminal(jobs.Get(job->id)->state); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    for (uint64_t t : tokens) jobs.Unsubscribe(t);
    absl::MutexLock lock(&mu);
    for (const auto& statuses : seen) {
      ASSERT_FALSE(statuses.empty());
      for (size_t i = 1; i < statuses.size(); ++i) {
        ASSERT_GT(statuses[i].version, statuses[i - 1].version)
            << "round " << round << ": version " << statuses[i].version
            << " after " << statuses[i - 1].version;
      }
      EXPECT_EQ(statuses.back().state, JobState::kSucceeded);
    }
  }
}

TEST(JobManagerTest, ShutdownStopsRunningJobsAsInterruptedAndRefusesNewOnes) {
  const std::string dir = NewTempDir("jobs");
  std::vector<JobStatus> ended;
  absl::Notification started;
  {
    JobManager jobs(dir, [&](const JobStatus& s) { ended.push_back(s); });
    auto job = jobs.Start(
        "m", "int8", "quantize",
        [&](JobContext& ctx) -> absl::StatusOr<std::string> {
          started.Notify();
          while (!ctx.cancel_flag()->load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
          }
          return absl::CancelledError("stopped");
        });
    ASSERT_TRUE(job.ok());
    started.WaitForNotification();
    jobs.Shutdown();
    EXPECT_EQ(jobs.Get(job->id)->state, JobState::kInterrupted);
    EXPECT_THAT(jobs.Get(job->id)->message, ::testing::HasSubstr("shut down"));
    EXPECT_EQ(jobs.Start("n", "int8", "quantize",
                         [](JobContext&) -> absl::StatusOr<std::string> {
                           return std::string();
                         })
                  .status()
                  .code(),
              absl::StatusCode::kUnavailable);
  }
  ASSERT_EQ(ended.size(), 1u);
  EXPECT_EQ(ended[0].state, JobState::kInterrupted);
  // The record says so after a restart too.
  JobManager again(dir);
  ASSERT_EQ(again.List("").size(), 1u);
  EXPECT_EQ(again.List("")[0].state, JobState::kInterrupted);
}

TEST(JobManagerTest, CancelEndsCancelledAndOneJobPerModel) {
  JobManager jobs(NewTempDir("jobs"));
  auto job =
      jobs.Start("m", "int8", "quantize",
                 [&](JobContext& ctx) -> absl::StatusOr<std::string> {
                   while (!ctx.cancel_flag()->load()) {
                     std::this_thread::sleep_for(std::chrono::milliseconds(1));
                   }
                   return absl::CancelledError("cancelled by request");
                 });
  ASSERT_TRUE(job.ok());
  auto second = jobs.Start(
      "m", "bf16", "quantize",
      [](JobContext&) -> absl::StatusOr<std::string> { return std::string(); });
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(jobs.Cancel(job->id).ok());
  for (int i = 0; i < 1000 && !IsTerminal(jobs.Get(job->id)->state); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(jobs.Get(job->id)->state, JobState::kCancelled);
  EXPECT_EQ(jobs.Cancel(job->id).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(jobs.Get("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST(JobManagerTest, KeepsOnlyTheNewestEndedJobs) {
  const std::string dir = NewTempDir("jobs");
  std::vector<std::string> ids;
  {
    JobManager jobs(dir, nullptr, 0, /*max_ended_kept=*/3);
    for (int i = 0; i < 6; ++i) {
      auto job = jobs.Start(absl::StrCat("m", i), "int8", "quantize",
                            [](JobContext&) -> absl::StatusOr<std::string> {
                              return std::string("done");
                            });
      ASSERT_TRUE(job.ok()) << job.status();
      ids.push_back(job->id);
      while (!IsTerminal(jobs.Get(job->id)->state)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // Pruned when a job starts: three kept, then the last one.
    EXPECT_EQ(jobs.List("").size(), 4u);
    EXPECT_EQ(jobs.Get(ids[0]).status().code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE(jobs.Get(ids[5]).ok());
    EXPECT_EQ(ListDir(dir)->size(), 4u);
  }
  // And when the records are loaded again.
  JobManager again(dir, nullptr, 0, /*max_ended_kept=*/3);
  const std::vector<JobStatus> kept = again.List("");
  ASSERT_EQ(kept.size(), 3u);
  EXPECT_EQ(kept[0].id, ids[5]);  // newest first
  EXPECT_EQ(kept[2].id, ids[3]);
  EXPECT_EQ(ListDir(dir)->size(), 3u);
}

TEST(JobManagerTest, AtMostMaxRunningJobsAtOnce) {
  JobManager jobs(NewTempDir("jobs"), nullptr, /*max_running=*/1);
  auto wait_for_cancel = [](JobContext& ctx) -> absl::StatusOr<std::string> {
    while (!ctx.cancel_flag()->load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return absl::CancelledError("cancelled by request");
  };
  auto first = jobs.Start("a", "int8", "quantize", wait_for_cancel);
  ASSERT_TRUE(first.ok());
  auto second = jobs.Start("b", "int8", "quantize", wait_for_cancel);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr("--max_concurrent_jobs=1"));
  ASSERT_TRUE(jobs.Cancel(first->id).ok());
  for (int i = 0; i < 1000 && !IsTerminal(jobs.Get(first->id)->state); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  auto third = jobs.Start("b", "int8", "quantize", wait_for_cancel);
  EXPECT_TRUE(third.ok()) << third.status();
  jobs.Shutdown();
}

}  // namespace
}  // namespace twinserve
