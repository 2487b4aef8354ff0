// End to end: traffic policies on the real binary (weighted shares, sticky
// routing keys, version bypass, promote, rollback, history, durability,
// policy changes under load).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstring>
#include <functional>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

class TrafficTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewTempDir("store");
    Start();
    ASSERT_TRUE(::twinserve::testing::RegisterAddSubWithAlt(*client_).ok());
  }
  void Start(std::vector<std::string> flags = {}) {
    server_.reset();  // stopped before the next one starts on the store
    server_ = std::make_unique<ServerProcess>(store_, std::move(flags));
    client_ = std::make_unique<TwinClient>(server_->address());
  }
  // Rolls out add_sub_wrong (its sum negated) as "wrong" under load and
  // expects its disagreement guard to roll it back at stage 1.
  void RollBackABadCandidate();
  // The variant that served one request.
  std::string Served(const std::string& key = "",
                     const std::string& version = "") {
    HostTensor a =
        HostTensor::Owned("a", DataType::kFp32, {1, 4}, std::string(16, '\0'));
    HostTensor b = a;
    b.name = "b";
    auto req = MakeInferRequest("m", {a, b}, version, {}, "");
    if (!key.empty()) {
      (*req.mutable_parameters())["routing_key"].set_string_param(key);
    }
    inference::ModelInferResponse resp;
    grpc::Status st = client_->RawInfer(req, &resp);
    return st.ok() ? resp.model_version() : "error: " + st.error_message();
  }
  absl::StatusOr<v1::TrafficPolicy> Set(v1::TrafficPolicy p,
                                        const std::string& reason = "test") {
    grpc::ClientContext ctx;
    v1::SetTrafficPolicyRequest req;
    req.set_model("m");
    *req.mutable_policy() = p;
    req.set_author("tester");
    req.set_reason(reason);
    v1::TrafficPolicy out;
    grpc::Status st = client_->management()->SetTrafficPolicy(&ctx, req, &out);
    if (!st.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                          st.error_message());
    }
    return out;
  }
  // The current policy; a failed poll fails the test (it used to read as
  // an empty policy and go unnoticed).
  v1::TrafficPolicy Current() {
    auto p = client_->GetPolicy("m");
    EXPECT_TRUE(p.ok()) << "GetTrafficPolicy: " << p.status();
    return p.ok() ? *p : v1::TrafficPolicy();
  }
  static v1::TrafficPolicy Weighted(double fp32, double alt) {
    v1::TrafficPolicy p;
    p.set_kind("weighted");
    (*p.mutable_weights())["fp32"] = fp32;
    (*p.mutable_weights())["alt"] = alt;
    return p;
  }

  std::string store_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TwinClient> client_;
};

TEST_F(TrafficTest, WeightedSharesStickyKeysAndVersionBypass) {
  EXPECT_EQ(Served(), "fp32");
  auto p = Set(Weighted(70, 30));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->version(), 1u);
  int alt = 0;
  const int n = 1000;
  for (int i = 0; i < n; ++i) alt += Served() == "alt";
  EXPECT_NEAR(alt / double(n), 0.30, 0.05);
  for (int k = 0; k < 20; ++k) {
    const std::string key = absl::StrCat("user-", k);
    const std::string first = Served(key);
    for (int i = 0; i < 10; ++i) ASSERT_EQ(Served(key), first) << key;
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Served("", "fp32"), "fp32");
}

TEST_F(TrafficTest, InvalidPoliciesAreRefused) {
  v1::TrafficPolicy p = Weighted(1, 1);
  (*p.mutable_weights())["ghost"] = 1;
  auto st = Set(p);
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.status().message(), HasSubstr("'ghost'"));
  p = Weighted(0, 0);
  EXPECT_EQ(Set(p).status().code(), absl::StatusCode::kInvalidArgument);
  p.set_kind("rollout");  // no candidate, no steps
  EXPECT_EQ(Set(p).status().code(), absl::StatusCode::kInvalidArgument);
  p.set_kind("shadow");  // no candidate
  EXPECT_EQ(Set(p).status().code(), absl::StatusCode::kInvalidArgument);
  p.set_kind("pinned");
  p.set_baseline("int8");
  EXPECT_EQ(Set(p).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Served(), "fp32");
}

TEST_F(TrafficTest, PromoteRollbackHistoryAndRestart) {
  ASSERT_TRUE(Set(Weighted(90, 10), "canary").ok());
  {
    grpc::ClientContext ctx;
    v1::PromoteRequest req;
    req.set_model("m");
    req.set_variant("alt");
    req.set_author("oncall");
    req.set_reason("canary looked good");
    v1::TrafficPolicy out;
    ASSERT_TRUE(client_->management()->Promote(&ctx, req, &out).ok());
    EXPECT_EQ(out.kind(), "pinned");
    EXPECT_EQ(out.baseline(), "alt");
  }
  for (int i = 0; i < 20; ++i) EXPECT_EQ(Served(), "alt");
  {
    grpc::ClientContext ctx;
    v1::RollbackRequest req;
    req.set_model("m");
    req.set_author("oncall");
    req.set_reason("3 a.m. page");
    v1::TrafficPolicy out;
    ASSERT_TRUE(client_->management()->Rollback(&ctx, req, &out).ok());
    EXPECT_EQ(out.kind(), "weighted");
    EXPECT_EQ(out.version(), 3u);
  }
  server_->Kill9();
  Start();
  grpc::ClientContext ctx;
  v1::PolicyHistoryRequest req;
  req.set_model("m");
  v1::PolicyHistoryResponse history;
  ASSERT_TRUE(client_->management()->PolicyHistory(&ctx, req, &history).ok());
  ASSERT_EQ(history.changes_size(), 3);
  EXPECT_EQ(history.changes(0).action(), "set");
  EXPECT_EQ(history.changes(0).reason(), "canary");
  EXPECT_EQ(history.changes(1).action(), "promote");
  EXPECT_EQ(history.changes(1).actor(), "oncall");
  EXPECT_EQ(history.changes(2).action(), "rollback");
  EXPECT_EQ(history.changes(2).reason(), "3 a.m. page");
  grpc::ClientContext c2;
  v1::GetTrafficPolicyRequest greq;
  greq.set_model("m");
  v1::TrafficPolicy now;
  ASSERT_TRUE(client_->management()->GetTrafficPolicy(&c2, greq, &now).ok());
  EXPECT_EQ(now.kind(), "weighted");
  EXPECT_EQ(now.weights().at("alt"), 10);
}

// Sends requests from two threads until `done` says stop (or 20 s pass);
// returns how many failed.
int LoadUntil(const std::string& address, const std::function<bool()>& done) {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<float> v = {1, 2, 3, 4};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      TwinClient c(address);
      HostTensor a =
          HostTensor::Owned("a", DataType::kFp32, {1, 4},
                            std::string(reinterpret_cast<char*>(v.data()), 16));
      HostTensor b = a;
      b.name = "b";
      while (!stop) {
        if (!c.Infer("m", {a, b}).ok()) ++failures;
      }
    });
  }
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop = true;
  for (auto& t : threads) t.join();
  return failures.load();
}

void TrafficTest::RollBackABadCandidate() {
  RegisterOptions wrong;
  wrong.name = "m";
  wrong.variant = "wrong";
  ASSERT_TRUE(
      client_->Register(wrong, ReadFileOrDie(FixturePath("add_sub_wrong.pt")))
          .ok());
  v1::TrafficPolicy p;
  p.set_kind("rollout");
  p.set_candidate("wrong");
  p.add_steps(10);
  p.add_steps(50);
  p.add_steps(100);
  p.set_min_requests(1000000);  // never advances on its own
  ASSERT_TRUE(Set(p, "roll out a bad build").ok());
  const int failures = LoadUntil(server_->address(),
                                 [&] { return Current().kind() == "pinned"; });
  EXPECT_EQ(failures, 0) << "no client request fails during the rollback";
  const v1::TrafficPolicy now = Current();
  EXPECT_EQ(now.kind(), "pinned");
  EXPECT_EQ(now.baseline(), "fp32");
  grpc::ClientContext ctx;
  v1::PolicyHistoryRequest req;
  req.set_model("m");
  v1::PolicyHistoryResponse history;
  ASSERT_TRUE(client_->management()->PolicyHistory(&ctx, req, &history).ok());
  const auto& last = history.changes(history.changes_size() - 1);
  EXPECT_EQ(last.action(), "rollback");
  EXPECT_EQ(last.actor(), "guard:disagreement");
  EXPECT_THAT(last.reason(), HasSubstr("top-1 disagreement"));
  EXPECT_THAT(last.reason(), HasSubstr("stage 1"));
}

TEST_F(TrafficTest, RolloutOfABadCandidateIsRolledBackByItsGuard) {
  RollBackABadCandidate();
}

TEST_F(TrafficTest, GuardsAndLiveStatisticsDoNotNeedMetrics) {
  // --metrics=false used to disable the disagreement, cosine and p99
  // guards and empty GetModelStats: decisions read Prometheus then. Now it
  // changes nothing but /metrics.
  Start({"--metrics=false"});
  RollBackABadCandidate();
  auto stats = client_->GetModelStats("m");
  ASSERT_TRUE(stats.ok()) << stats.status();
  std::map<std::string, v1::VariantLiveStats> by_variant;
  for (const auto& v : stats->variants()) by_variant[v.variant()] = v;
  EXPECT_GT(by_variant["fp32"].requests(), 0u);
  EXPECT_GT(by_variant["wrong"].requests(), 0u);
  EXPECT_GT(by_variant["wrong"].top1_disagreements(), 0u);
  EXPECT_GT(by_variant["fp32"].bucket_counts_size(), 0);
}

TEST_F(TrafficTest, RolloutOfAGoodCandidateAdvancesAndPromotes) {
  v1::TrafficPolicy p;
  p.set_kind("rollout");
  p.set_candidate("alt");
  p.add_steps(25);
  p.add_steps(100);
  p.set_min_requests(20);
  p.set_min_seconds(0.3);
  p.set_max_p99_ratio(0);  // identical models; latency noise is not a signal
  ASSERT_TRUE(Set(p, "roll out alt").ok());
  const int failures = LoadUntil(server_->address(), [&] {
    const auto b = Current();
    return b.kind() == "pinned" && b.baseline() == "alt";
  });
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(Current().baseline(), "alt");
  grpc::ClientContext ctx;
  v1::PolicyHistoryRequest req;
  req.set_model("m");
  v1::PolicyHistoryResponse history;
  ASSERT_TRUE(client_->management()->PolicyHistory(&ctx, req, &history).ok());
  std::vector<std::string> actions;
  for (const auto& c : history.changes()) actions.push_back(c.action());
  EXPECT_THAT(actions, ::testing::ElementsAre("set", "advance", "promote"));
  EXPECT_EQ(history.changes(1).actor(), "rollout");
}

TEST_F(TrafficTest, TwoFp32GenerationsServeSideBySide) {
  // Generation 2 (the "wrong" build, to tell them apart) beside generation 1.
  RegisterOptions o = ::twinserve::testing::AddSubOptions("m");
  o.replace = true;
  o.keep_previous = true;
  auto info =
      client_->Register(o, ReadFileOrDie(FixturePath("add_sub_wrong.pt")));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->generation(), 2u);
  std::vector<std::string> names;
  for (const auto& v : info->variants()) names.push_back(v.name());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("fp32", "fp32-g1"));
  // Traffic stays on generation 1 until moved.
  for (int i = 0; i < 10; ++i) EXPECT_EQ(Served(), "fp32-g1");
  EXPECT_EQ(Served("", "fp32"), "fp32");
  v1::TrafficPolicy p;
  p.set_kind("weighted");
  p.set_baseline("fp32-g1");
  (*p.mutable_weights())["fp32-g1"] = 1;
  (*p.mutable_weights())["fp32"] = 1;
  ASSERT_TRUE(Set(p, "A/B of two generations").ok());
  int g2 = 0;
  for (int i = 0; i < 200; ++i) g2 += Served() == "fp32";
  EXPECT_NEAR(g2 / 200.0, 0.5, 0.15);
  // Both generations survive a restart.
  server_->Kill9();
  Start();
  EXPECT_EQ(Served("", "fp32-g1"), "fp32-g1");
  EXPECT_EQ(Served("", "fp32"), "fp32");
}

TEST_F(TrafficTest, PolicyChangesNeverFailRequestsInFlight) {
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, served{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      TwinClient c(server_->address());
      HostTensor a = HostTensor::Owned("a", DataType::kFp32, {1, 4},
                                       std::string(16, '\0'));
      HostTensor b = a;
      b.name = "b";
      while (!stop) {
        auto out = c.Infer("m", {a, b});
        if (!out.ok()) ++failures;
        ++served;
      }
    });
  }
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(Set(i % 2 ? Weighted(50, 50) : Weighted(100, 0)).ok());
  }
  stop = true;
  for (auto& c : clients) c.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(served.load(), 0);
}

}  // namespace
}  // namespace twinserve
