// FleetJobs against a real etcd.
#include "server/core/fleet_jobs.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cluster/test_util/etcd_process.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

JobStatus Job(const std::string& id, const std::string& model, JobState st,
              int64_t created) {
  JobStatus s;
  s.id = id;
  s.model = model;
  s.state = st;
  s.created_unix_ms = created;
  s.version = 1;
  return s;
}

class FleetJobsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<testing::EtcdProcess>();
    client_ = *EtcdClient::Create({etcd_->endpoint(), absl::Seconds(2)});
  }
  std::unique_ptr<Fleet> NewFleet(const std::string& id) {
    FleetOptions o;
    o.replica_id = id;
    o.lease_ttl = absl::Seconds(2);
    auto f = std::make_unique<Fleet>(client_.get(), "/t/", o);
    // The session's lease is granted by its thread.
    for (int i = 0; i < 100 && f->session() == 0; ++i) {
      absl::SleepFor(absl::Milliseconds(20));
    }
    return f;
  }
  std::unique_ptr<testing::EtcdProcess> etcd_;
  std::unique_ptr<EtcdClient> client_;
};

TEST_F(FleetJobsTest, OneClaimPerModelAcrossReplicas) {
  auto fa = NewFleet("a");
  auto fb = NewFleet("b");
  FleetJobs a(fa.get()), b(fb.get());
  JobStatus j1 = Job("j1", "m", JobState::kRunning, 1);
  ASSERT_TRUE(a.Claim(j1).ok());
  absl::Status refused = b.Claim(Job("j2", "m", JobState::kRunning, 2));
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.message()), HasSubstr("job j1 on replica a"));
  EXPECT_TRUE(b.Claim(Job("j3", "other", JobState::kRunning, 3)).ok());
  a.Publish(j1);
  auto found = b.Find("j1");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->state, JobState::kRunning);
  j1.state = JobState::kSucceeded;
  j1.version = 2;
  a.Publish(j1);
  a.Release(j1);
  EXPECT_TRUE(b.Claim(Job("j2", "m", JobState::kRunning, 2)).ok());
  EXPECT_EQ(b.Find("j1")->state, JobState::kSucceeded);
}

TEST_F(FleetJobsTest, ADeadReplicasJobIsInterruptedAndOldRecordsPruned) {
  auto fa = NewFleet("a");
  auto fb = NewFleet("b");
  FleetJobs b(fb.get(), /*max_ended_kept=*/3);
  {
    FleetJobs a(fa.get());
    JobStatus j = Job("run", "m", JobState::kRunning, 100);
    ASSERT_TRUE(a.Claim(j).ok());
    a.Publish(j);
  }
  // Replica a goes away without releasing (its lease is revoked as a
  // dead one's would expire): b marks the job.
  fa.reset();
  bool interrupted = false;
  for (int i = 0; i < 100 && !interrupted; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    auto s = b.Find("run");
    interrupted = s.ok() && s->state == JobState::kInterrupted;
  }
  EXPECT_TRUE(interrupted);
  EXPECT_THAT(b.Find("run")->message, HasSubstr("stopped"));
  // A record left running with no claim at all (its replica died while no
  // other ran) is swept by the next start.
  b.Publish(Job("orphan", "n", JobState::kRunning, 200));
  EXPECT_EQ(b.SweepOrphans(), 1);
  EXPECT_EQ(b.Find("orphan")->state, JobState::kInterrupted);
  // Ended records beyond the newest 3 go.
  for (int i = 0; i < 4; ++i) {
    b.Publish(Job(absl::StrCat("old", i), "m", JobState::kSucceeded, i));
  }
  EXPECT_EQ(b.Prune(), 3);  // 6 ended: old0..old3, run, orphan
  EXPECT_FALSE(b.Find("old0").ok());
  EXPECT_TRUE(b.Find("run").ok());
  EXPECT_EQ(b.List("").size(), 3u);
}

}  // namespace
}  // namespace twinserve
