// End to end: a real etcd and three twinserve replicas as processes on
// loopback sharing one blob folder (issue 14's fleet, on one machine).
#include <atomic>
#include <chrono>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/cluster/etcd_client.h"
#include "server/cluster/test_util/etcd_process.h"
#include "server/common/file_util.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::EtcdProcess;
using ::twinserve::testing::FashionOptions;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::RandomImages;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

constexpr int kReplicas = 3;

std::string Bytes(const HostTensor& t) {
  return std::string(t.data, t.byte_size);
}

class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    etcd_ = std::make_unique<EtcdProcess>(NewTempDir("etcd"));
    blobs_ = NewTempDir("blobs");
    for (int i = 0; i < kReplicas; ++i) {
      stores_.push_back(NewTempDir(absl::StrCat("replica", i)));
      servers_.emplace_back();
      clients_.emplace_back();
      Start(i);
    }
  }
  void Start(int i) {
    servers_[i].reset();
    servers_[i] = std::make_unique<ServerProcess>(
        stores_[i], std::vector<std::string>{
                        "--cluster_etcd=" + etcd_->endpoint(),
                        "--cluster_blobs=" + blobs_,
                        "--cluster_prefix=/test/",
                        "--cluster_lease_ttl_s=2",
                        absl::StrCat("--cluster_replica_id=replica", i),
                    });
    clients_[i] = std::make_unique<TwinClient>(servers_[i]->address());
  }
  TwinClient& C(int i) { return *clients_[i]; }

  // Waits until `pred(i)` holds on every replica; the time it took.
  absl::StatusOr<double> Converge(const std::function<bool(int)>& pred,
                                  double timeout_s = 10) {
    const auto start = std::chrono::steady_clock::now();
    auto elapsed = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                           start)
          .count();
    };
    for (int i = 0; i < kReplicas; ++i) {
      while (!pred(i)) {
        if (elapsed() > timeout_s) {
          return absl::DeadlineExceededError(absl::StrCat(
              "replica ", i, " did not converge in ", timeout_s, " s"));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    return elapsed();
  }
  bool HasVariant(int i, const std::string& model, const std::string& v) {
    auto info = C(i).Get(model);
    if (!info.ok()) return false;
    for (const auto& vi : info->variants()) {
      if (vi.name() == v && vi.state() == v1::READY) return true;
    }
    return false;
  }
  std::string PolicyKind(int i, const std::string& model) {
    auto p = C(i).GetPolicy(model);
    return p.ok() ? p->kind() + "/" + p->baseline() : "error";
  }
  absl::Status SetPinned(int i, const std::string& model,
                         const std::string& variant) {
    v1::SetTrafficPolicyRequest req;
    req.set_model(model);
    req.mutable_policy()->set_kind("pinned");
    req.mutable_policy()->set_baseline(variant);
    req.set_author("test");
    req.set_reason("cluster test");
    return C(i).SetPolicy(req).status();
  }
  absl::Status RegisterFashion(int i, const std::string& name) {
    return C(i)
        .Register(FashionOptions(name),
                  ReadFileOrDie(FixturePath("fashion_cnn.pt")))
        .status();
  }

  std::unique_ptr<EtcdProcess> etcd_;
  std::string blobs_;
  std::vector<std::string> stores_;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
  std::vector<std::unique_ptr<TwinClient>> clients_;
};

TEST_F(ClusterTest, AWriteThroughAnyReplicaIsServedByAll) {
  // Register through replica 0: all serve it.
  ASSERT_TRUE(RegisterFashion(0, "fm").ok());
  auto registered =
      Converge([&](int i) { return HasVariant(i, "fm", "fp32"); });
  ASSERT_TRUE(registered.ok()) << registered.status();
  std::printf("cluster: registration served by all %d replicas in %.3f s\n",
              kReplicas, *registered);
  EXPECT_LT(*registered, 2.0);

  // Calibrate and quantize through replica 1: the int8 variant reaches all.
  ASSERT_TRUE(
      C(1).UploadCalibration("fm", "calib", {RandomImages(64, 7)}, {}, false)
          .ok());
  ASSERT_TRUE(::twinserve::testing::QuantizeAndWait(C(1), "fm").ok());
  auto published = Converge([&](int i) { return HasVariant(i, "fm", "int8"); });
  ASSERT_TRUE(published.ok()) << published.status();
  std::printf(
      "cluster: int8 variant served by all replicas %.3f s after its "
      "job ended\n",
      *published);
  EXPECT_LT(*published, 2.0);

  // Identical outputs from every replica, per variant.
  HostTensor images = RandomImages(8, 11);
  for (const std::string v : {"fp32", "int8"}) {
    std::string first;
    for (int i = 0; i < kReplicas; ++i) {
      auto out = C(i).Infer("fm", {images}, v);
      ASSERT_TRUE(out.ok()) << "replica " << i << ": " << out.status();
      ASSERT_EQ(out->version, v);
      if (i == 0) {
        first = Bytes(out->outputs[0]);
      } else {
        EXPECT_EQ(Bytes(out->outputs[0]), first) << "replica " << i << " " << v;
      }
    }
  }

  // A policy set through replica 2 routes on all.
  ASSERT_TRUE(SetPinned(2, "fm", "int8").ok());
  auto routed = Converge([&](int i) {
    auto out = C(i).Infer("fm", {images});
    return out.ok() && out->version == "int8";
  });
  ASSERT_TRUE(routed.ok()) << routed.status();
  std::printf("cluster: policy change routing on all replicas in %.3f s\n",
              *routed);
  EXPECT_LT(*routed, 2.0);

  // Each replica's fleet gauges: all follow the store and hold a session;
  // exactly one leads.
  double leaders = 0;
  for (int i = 0; i < kReplicas; ++i) {
    const std::string text =
        ::twinserve::testing::Scrape(servers_[i]->metrics_address());
    const std::string label = absl::StrCat("{replica=\"replica", i, "\"}");
    EXPECT_EQ(::twinserve::testing::MetricValue(
                  text, "twinserve_cluster_store_following" + label),
              1)
        << text;
    EXPECT_EQ(::twinserve::testing::MetricValue(
                  text, "twinserve_cluster_session" + label),
              1);
    leaders += ::twinserve::testing::MetricValue(
        text, "twinserve_cluster_leader" + label);
  }
  EXPECT_EQ(leaders, 1);

  // Unregistered through replica 0: gone everywhere.
  ASSERT_TRUE(C(0).Unregister("fm").ok());
  auto gone = Converge([&](int i) {
    return C(i).Get("fm").status().code() == absl::StatusCode::kNotFound;
  });
  ASSERT_TRUE(gone.ok()) << gone.status();
}

TEST_F(ClusterTest, ConcurrentWritersOnEveryReplicaThenKill9AndRestart) {
  for (const char* m : {"a", "b"}) ASSERT_TRUE(RegisterFashion(0, m).ok());
  ASSERT_TRUE(Converge([&](int i) { return HasVariant(i, "b", "fp32"); }).ok());
  // Writers of every kind at once, each through another replica: policy
  // changes, batching changes, calibration uploads, a registration.
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {  // policies on a and b through replica 0
    for (int k = 0; k < 10; ++k) {
      for (const char* m : {"a", "b"}) {
        v1::SetTrafficPolicyRequest req;
        req.set_model(m);
        req.mutable_policy()->set_kind("pinned");
        req.mutable_policy()->set_baseline("fp32");
        req.set_author("t0");
        req.set_reason(absl::StrCat("change ", k));
        if (!C(0).SetPolicy(req).ok()) failures++;
      }
    }
  });
  threads.emplace_back([&] {  // batching on a and b through replica 1
    for (int k = 1; k <= 10; ++k) {
      for (const char* m : {"a", "b"}) {
        v1::SetBatchingRequest req;
        req.set_model(m);
        req.mutable_config()->set_max_batch_size(k);
        req.mutable_config()->set_max_queue_delay_microseconds(100);
        auto st = C(1).SetBatching(req);
        if (!st.ok()) {
          ADD_FAILURE() << st.status();
          failures++;
        }
      }
    }
  });
  threads.emplace_back([&] {  // calibration sets through replica 2
    for (int k = 0; k < 4; ++k) {
      for (const char* m : {"a", "b"}) {
        auto st = C(2).UploadCalibration(m, absl::StrCat("set", k),
                                         {RandomImages(16, k)}, {}, false);
        if (!st.ok()) {
          ADD_FAILURE() << st.status();
          failures++;
        }
      }
    }
  });
  threads.emplace_back([&] {  // a registration through replica 1
    if (!RegisterFashion(1, "c").ok()) failures++;
  });
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);

  // Every replica killed at once, then restarted: all of it is there, on
  // every replica.
  for (int i = 0; i < kReplicas; ++i) servers_[i]->Kill9();
  for (int i = 0; i < kReplicas; ++i) Start(i);
  for (int i = 0; i < kReplicas; ++i) {
    for (const char* m : {"a", "b"}) {
      auto sets = C(i).ListCalibrationSets(m);
      ASSERT_TRUE(sets.ok()) << sets.status();
      EXPECT_EQ(sets->size(), 4u) << "replica " << i << " model " << m;
      auto history = C(i).PolicyHistory(m);
      ASSERT_TRUE(history.ok());
      EXPECT_EQ(history->size(), 10u) << "replica " << i << " model " << m;
      auto info = C(i).Get(m);
      ASSERT_TRUE(info.ok());
      EXPECT_EQ(info->batching().max_batch_size(), 10)
          << "replica " << i << " model " << m;
    }
    EXPECT_TRUE(HasVariant(i, "c", "fp32")) << "replica " << i;
  }
}

TEST_F(ClusterTest, EtcdOutageUnderLoadServesAndRefusesWritesThenCatchesUp) {
  ASSERT_TRUE(RegisterFashion(0, "fm").ok());
  ASSERT_TRUE(
      Converge([&](int i) { return HasVariant(i, "fm", "fp32"); }).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> load;
  for (int i = 0; i < kReplicas; ++i) {
    load.emplace_back([&, i] {
      TwinClient client(servers_[i]->address());
      HostTensor images = RandomImages(1, i);
      while (!stop) {
        auto out = client.Infer("fm", {images});
        if (out.ok()) {
          ok++;
        } else {
          failed++;
          ADD_FAILURE() << "replica " << i << ": " << out.status();
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  etcd_->Pause();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  // Writes answer UNAVAILABLE, naming the cause.
  for (int i = 0; i < kReplicas; ++i) {
    absl::Status st = SetPinned(i, "fm", "fp32");
    EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
    EXPECT_THAT(std::string(st.message()), ::testing::HasSubstr("etcd"));
  }
  // Reloading from the store cannot read it: refused, and the model keeps
  // serving (it used to be marked unservable).
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    inference::RepositoryModelLoadRequest req;
    req.set_model_name("fm");
    inference::RepositoryModelLoadResponse resp;
    grpc::Status st = C(2).oip()->RepositoryModelLoad(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
        << st.error_message();
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));
  etcd_->Resume();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), 100);
  // Writes work again and reach every replica.
  ASSERT_TRUE(
      C(1).UploadCalibration("fm", "calib", {RandomImages(16, 1)}, {}, false)
          .ok());
  auto seen = Converge([&](int i) {
    auto sets = C(i).ListCalibrationSets("fm");
    return sets.ok() && sets->size() == 1;
  });
  EXPECT_TRUE(seen.ok()) << seen.status();
}

TEST_F(ClusterTest,
       OneJobPerModelInTheFleetAndAKilledReplicasJobIsInterrupted) {
  ASSERT_TRUE(RegisterFashion(0, "fm").ok());
  ASSERT_TRUE(
      C(0).UploadCalibration("fm", "calib", {RandomImages(256, 3)}, {}, false)
          .ok());
  v1::QuantizeRequest q;
  q.set_model("fm");
  q.set_calibration_set("calib");
  q.set_method("entropy");
  auto job = C(1).Quantize(q);
  ASSERT_TRUE(job.ok()) << job.status();
  // A second job for the model through another replica is refused, naming
  // the first.
  auto second = C(2).Quantize(q);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition)
      << second.status();
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr(job->id()));
  // Any replica answers for the job.
  auto seen = C(0).GetJob(job->id());
  ASSERT_TRUE(seen.ok()) << seen.status();
  EXPECT_EQ(seen->model(), "fm");
  auto listed = C(2).ListJobs("fm");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 1u);
  // Another replica follows the job to its end.
  absl::StatusOr<v1::Job> followed;
  std::thread follower([&] { followed = C(0).WatchJob(job->id(), nullptr); });
  // Cancelling goes through the replica running it.
  auto cancel = C(2).CancelJob(job->id());
  EXPECT_EQ(cancel.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(cancel.status().message()),
              ::testing::HasSubstr("another replica"));
  // The replica running it dies.
  servers_[1]->Kill9();
  const auto killed = std::chrono::steady_clock::now();
  auto blobs_before = ListDir(blobs_);
  follower.join();
  std::printf(
      "cluster: job of a killed replica seen INTERRUPTED through "
      "another replica's WatchJob %.2f s after the kill (lease TTL "
      "2 s)\n",
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed)
          .count());
  ASSERT_TRUE(followed.ok()) << followed.status();
  EXPECT_EQ(followed->state(), v1::JOB_INTERRUPTED);
  EXPECT_THAT(followed->message(), ::testing::HasSubstr("lease expired"));
  // Every other replica answers INTERRUPTED for it.
  auto interrupted = Converge(
      [&](int i) {
        if (i == 1) return true;
        auto j = C(i).GetJob(job->id());
        return j.ok() && j->state() == v1::JOB_INTERRUPTED;
      },
      15);
  ASSERT_TRUE(interrupted.ok()) << interrupted.status();
  // Nothing half-made is served or stored.
  for (int i : {0, 2}) {
    auto info = C(i).Get("fm");
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->variants_size(), 1) << "replica " << i;
    auto out = C(i).Infer("fm", {RandomImages(1, 1)});
    ASSERT_TRUE(out.ok());
    EXPECT_EQ(out->version, "fp32");
  }
  EXPECT_EQ(ListDir(blobs_)->size(), blobs_before->size());
  // The claim went with the replica: the model can be quantized again,
  // through another replica; the restarted replica serves the result.
  ASSERT_TRUE(::twinserve::testing::QuantizeAndWait(C(2), "fm").ok());
  Start(1);
  EXPECT_TRUE(HasVariant(1, "fm", "int8"));
}

TEST_F(ClusterTest, ARolloutGuardTripsOnTheFleetsSum) {
  // add_sub with a "wrong" variant (its sum negated), rolled out at 100%:
  // every request is compared, and the guards need 30 samples.
  ASSERT_TRUE(::twinserve::testing::RegisterAddSubWithAlt(C(0)).ok());
  RegisterOptions wrong;
  wrong.name = "m";
  wrong.variant = "wrong";
  ASSERT_TRUE(
      C(0).Register(wrong, ReadFileOrDie(FixturePath("add_sub_wrong.pt")))
          .ok());
  ASSERT_TRUE(
      Converge([&](int i) { return HasVariant(i, "m", "wrong"); }).ok());
  v1::SetTrafficPolicyRequest req;
  req.set_model("m");
  v1::TrafficPolicy* p = req.mutable_policy();
  p->set_kind("rollout");
  p->set_candidate("wrong");
  p->add_steps(100);
  p->set_min_requests(1000000);  // never promotes on its own
  p->set_min_samples(30);
  req.set_author("test");
  req.set_reason("roll out a bad build");
  ASSERT_TRUE(C(0).SetPolicy(req).ok());
  ASSERT_TRUE(Converge([&](int i) {
                return PolicyKind(i, "m").rfind("rollout", 0) == 0;
              }).ok());
  // Let every replica see the stage begin before traffic arrives.
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  // 12 requests per replica: 36 in the fleet, under 30 on each.
  HostTensor a =
      HostTensor::Owned("a", DataType::kFp32, {1, 4}, std::string(16, '\1'));
  HostTensor b = a;
  b.name = "b";
  for (int i = 0; i < kReplicas; ++i) {
    for (int k = 0; k < 12; ++k) ASSERT_TRUE(C(i).Infer("m", {a, b}).ok());
  }
  auto rolled_back =
      Converge([&](int i) { return PolicyKind(i, "m") == "pinned/fp32"; }, 15);
  ASSERT_TRUE(rolled_back.ok()) << rolled_back.status();
  auto history = C(2).PolicyHistory("m");
  ASSERT_TRUE(history.ok());
  const auto& last = history->back();
  EXPECT_EQ(last.action(), "rollback");
  // The negated sum fails the cosine guard (top-1 of equal inputs agrees).
  EXPECT_EQ(last.actor(), "guard:cosine");
  // Judged as soon as the fleet's sum reaches 30: 30 to 36 of the 36
  // requests, however many of the last replica's had been shared by then.
  EXPECT_THAT(last.reason(), ::testing::ContainsRegex("over 3[0-6] requests"));
  // No replica alone had enough comparisons to judge.
  for (int i = 0; i < kReplicas; ++i) {
    auto stats = C(i).GetModelStats("m");
    ASSERT_TRUE(stats.ok());
    for (const auto& v : stats->variants()) {
      if (v.variant() != "wrong") continue;
      EXPECT_LT(v.requests(), 30u) << "replica " << i;
    }
  }
}

TEST_F(ClusterTest, AReplicaStartingWhileEtcdIsDownWaitsLiveAndNotReady) {
  ASSERT_TRUE(RegisterFashion(0, "fm").ok());
  etcd_->Kill9();
  const std::vector<std::string> flags = {
      "--cluster_etcd=" + etcd_->endpoint(), "--cluster_blobs=" + blobs_,
      "--cluster_prefix=/test/", "--cluster_replica_id=late"};
  ServerProcess late(NewTempDir("late"), flags, /*wait_until_ready=*/false);
  TwinClient client(late.address());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_TRUE(client.ServerLive().value_or(false));
  EXPECT_FALSE(client.ServerReady().value_or(true));
  // etcd back: it loads what the store holds and turns ready.
  etcd_->Start();
  ASSERT_TRUE(client.WaitForReady(std::chrono::seconds(20)).ok());
  auto info = client.Get("fm");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(client.Infer("fm", {RandomImages(1, 2)}).ok());
  // A replica told to stop while it still waits for etcd exits at once.
  etcd_->Kill9();
  ServerProcess stuck(NewTempDir("stuck"), flags, /*wait_until_ready=*/false);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(stuck.Stop(), 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                .count(),
            5.0);
  etcd_->Start();
}

}  // namespace
}  // namespace twinserve
