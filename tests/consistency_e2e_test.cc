// End to end: the core's consistency guarantees on the real binary. Each
// test here failed before the core redesign (issue 9): lost updates between
// concurrent writers, a job publishing into a model registered anew under
// its name, writes accepted before the stored models were loaded, a job
// outliving the service it ran in at SIGTERM, policies losing fields on the
// wire, and schedulers and metric series outliving their models.
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::AddSubOptions;
using ::twinserve::testing::FashionOptions;
using ::twinserve::testing::FashionSplit;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::LoadFashionSplit;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::RowsOf;
using ::twinserve::testing::Scrape;
using ::twinserve::testing::ServerProcess;

const FashionSplit& Train() {
  static const FashionSplit* split =
      new FashionSplit(LoadFashionSplit("train"));
  return *split;
}

const std::string& FashionBytes() {
  static const std::string* bytes =
      new std::string(ReadFileOrDie(FixturePath("fashion_cnn.pt")));
  return *bytes;
}

absl::StatusOr<v1::CalibrationSetInfo> Calibrate(TwinClient& client,
                                                 const std::string& model,
                                                 const std::string& set,
                                                 int64_t begin, int64_t n) {
  const auto& labels = Train().labels;
  return client.UploadCalibration(
      model, set, {RowsOf(Train().images, begin, n)},
      std::vector<int64_t>(labels.begin() + begin, labels.begin() + begin + n),
      /*replace=*/false);
}

// Polls until the job has made progress in calibration (or ended).
v1::Job WaitUntilCalibrating(TwinClient& client, const std::string& id) {
  v1::Job job;
  for (int i = 0; i < 600; ++i) {
    auto j = client.GetJob(id);
    EXPECT_TRUE(j.ok()) << j.status();
    if (!j.ok()) return job;
    job = *j;
    if (job.state() != v1::JOB_RUNNING || job.done() > 0) return job;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return job;
}

absl::StatusOr<v1::Job> StartQuantize(TwinClient& client,
                                      const std::string& model,
                                      int64_t max_samples) {
  v1::QuantizeRequest q;
  q.set_model(model);
  q.set_calibration_set("calib");
  q.set_max_samples(max_samples);
  // This test is about who publishes, not about accuracy.
  q.set_max_agreement_loss(100);
  q.set_max_accuracy_loss(100);
  return client.Quantize(q);
}

std::set<std::string> Names(const v1::ModelInfo& info) {
  std::set<std::string> out;
  for (const auto& v : info.variants()) out.insert(v.name());
  return out;
}

// --- Bug 1: every policy field survives the proto, both ways ---------------

void ExpectRollout(const v1::TrafficPolicy& p, const std::string& where) {
  SCOPED_TRACE(where);
  EXPECT_EQ(p.kind(), "rollout");
  EXPECT_EQ(p.baseline(), "fp32");
  EXPECT_EQ(p.candidate(), "alt");
  EXPECT_THAT(p.steps(), ::testing::ElementsAre(5, 25, 100));
  EXPECT_EQ(p.stage(), 1);
  EXPECT_EQ(p.min_requests(), 1000000);
  EXPECT_EQ(p.min_seconds(), 3600);
  EXPECT_EQ(p.compare_fraction(), 0.25);
  EXPECT_EQ(p.max_disagreement(), 0.125);
  EXPECT_EQ(p.min_cosine(), 0.5);
  EXPECT_EQ(p.max_error_rate(), 0.0625);
  EXPECT_EQ(p.max_p99_ratio(), 3.5);
  EXPECT_EQ(p.min_samples(), 77);
  EXPECT_EQ(p.author(), "alice");
  EXPECT_EQ(p.reason(), "slowly");
}

TEST(ConsistencyTest, EveryPolicyFieldRoundTripsThroughTheProto) {
  const std::string store = NewTempDir("store");
  auto server = std::make_unique<ServerProcess>(store);
  auto client = std::make_unique<TwinClient>(server->address());
  ASSERT_TRUE(::twinserve::testing::RegisterAddSubWithAlt(*client).ok());

  v1::SetTrafficPolicyRequest req;
  req.set_model("m");
  req.set_author("alice");
  req.set_reason("slowly");
  v1::TrafficPolicy& p = *req.mutable_policy();
  p.set_kind("rollout");
  p.set_candidate("alt");
  for (double s : {5, 25, 100}) p.add_steps(s);
  p.set_stage(1);
  // Never judged nor advanced while the test looks.
  p.set_min_requests(1000000);
  p.set_min_seconds(3600);
  p.set_compare_fraction(0.25);
  p.set_max_disagreement(0.125);
  p.set_min_cosine(0.5);
  p.set_max_error_rate(0.0625);
  p.set_max_p99_ratio(3.5);
  p.set_min_samples(77);
  auto set = client->SetPolicy(req);
  ASSERT_TRUE(set.ok()) << set.status();
  ExpectRollout(*set, "SetTrafficPolicy");
  auto got = client->GetPolicy("m");
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectRollout(*got, "GetTrafficPolicy");
  auto history = client->PolicyHistory("m");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_FALSE(history->empty());
  ExpectRollout(history->back().policy(), "PolicyHistory");
  auto stats = client->GetModelStats("m");
  ASSERT_TRUE(stats.ok()) << stats.status();
  ExpectRollout(stats->policy(), "GetModelStats");

  server->Kill9();
  server = std::make_unique<ServerProcess>(store);
  client = std::make_unique<TwinClient>(server->address());
  got = client->GetPolicy("m");
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectRollout(*got, "after kill -9");

  // A shadow policy keeps its fraction; a pinned one says nothing of it.
  v1::SetTrafficPolicyRequest shadow;
  shadow.set_model("m");
  shadow.mutable_policy()->set_kind("shadow");
  shadow.mutable_policy()->set_candidate("alt");
  shadow.mutable_policy()->set_shadow_fraction(0.375);
  auto s = client->SetPolicy(shadow);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->kind(), "shadow");
  EXPECT_EQ(s->shadow_fraction(), 0.375);
  EXPECT_EQ(s->author(), "operator");
}

// --- Bug 2: concurrent writers of every kind lose nothing -------------------

struct Expected {
  absl::Mutex mu;
  std::vector<std::string> errors ABSL_GUARDED_BY(mu);
  std::string policy_reason ABSL_GUARDED_BY(mu);
  uint64_t policy_version ABSL_GUARDED_BY(mu) = 0;
  int64_t batching_delay ABSL_GUARDED_BY(mu) = 0;
  void Error(const std::string& what, const absl::Status& st) {
    absl::MutexLock lock(&mu);
    errors.push_back(absl::StrCat(what, ": ", st.ToString()));
  }
};

void VerifyEverythingAcknowledged(TwinClient& client, Expected& e,
                                  const std::string& when) {
  SCOPED_TRACE(when);
  absl::MutexLock lock(&e.mu);
  auto sets = client.ListCalibrationSets("f");
  ASSERT_TRUE(sets.ok()) << sets.status();
  std::set<std::string> names;
  for (const auto& s : *sets) names.insert(s.name());
  std::set<std::string> want = {"calib"};
  for (int i = 0; i < 6; ++i) {
    want.insert(absl::StrCat("a", i));
    want.insert(absl::StrCat("b", i));
  }
  EXPECT_EQ(names, want);
  auto info = client.Get("f");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(Names(*info),
            (std::set<std::string>{"fp32", "alt", "v0", "v1", "v2", "int8"}));
  for (const auto& v : info->variants()) {
    EXPECT_EQ(v.state(), v1::READY) << v.name() << ": " << v.last_error();
  }
  EXPECT_EQ(info->batching().max_queue_delay_microseconds(), e.batching_delay);
  auto policy = client.GetPolicy("f");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ(policy->reason(), e.policy_reason);
  EXPECT_EQ(policy->version(), e.policy_version);
  auto history = client.PolicyHistory("f");
  ASSERT_TRUE(history.ok());
  std::set<std::string> reasons;
  for (const auto& c : *history) reasons.insert(c.reason());
  for (int i = 1; i <= 9; ++i) {
    EXPECT_TRUE(reasons.count(absl::StrCat("w", i))) << "w" << i;
  }
  // Every variant answers.
  for (const auto& v : info->variants()) {
    auto out = client.Infer("f", {RowsOf(Train().images, 0, 2)}, v.name());
    EXPECT_TRUE(out.ok()) << v.name() << ": " << out.status();
  }
}

TEST(ConsistencyTest, ConcurrentWritersOfEveryKindLoseNothingAcrossKill9) {
  const std::string store = NewTempDir("store");
  auto server = std::make_unique<ServerProcess>(store);
  TwinClient client(server->address());
  ASSERT_TRUE(client.Register(FashionOptions("f"), FashionBytes()).ok());
  RegisterOptions alt;
  alt.name = "f";
  alt.variant = "alt";
  ASSERT_TRUE(client.Register(alt, FashionBytes()).ok());
  ASSERT_TRUE(Calibrate(client, "f", "calib", 0, 512).ok());
  ASSERT_TRUE(Calibrate(client, "f", "doomed", 0, 16).ok());

  Expected e;
  std::atomic<bool> job_done{false};
  std::vector<std::thread> writers;
  // Two uploaders at once: sets a0..a5 and b0..b5.
  for (const char* prefix : {"a", "b"}) {
    writers.emplace_back([&, prefix] {
      for (int i = 0; i < 6; ++i) {
        const std::string set = absl::StrCat(prefix, i);
        auto st = Calibrate(client, "f", set, 100 * i, 32);
        if (!st.ok()) e.Error("calibrate " + set, st.status());
      }
    });
  }
  writers.emplace_back([&] {
    auto st = client.DeleteCalibrationSet("f", "doomed");
    if (!st.ok()) e.Error("delete doomed", st);
  });
  writers.emplace_back([&] {
    for (int i = 0; i < 3; ++i) {
      RegisterOptions v;
      v.name = "f";
      v.variant = absl::StrCat("v", i);
      auto st = client.Register(v, FashionBytes());
      if (!st.ok()) e.Error("register variant " + v.variant, st.status());
    }
  });
  // Policy and batching writers keep going until the job has published, so
  // that the publish races them.
  writers.emplace_back([&] {
    for (int i = 1;; i = i % 9 + 1) {
      v1::SetTrafficPolicyRequest req;
      req.set_model("f");
      req.set_reason(absl::StrCat("w", i));
      req.mutable_policy()->set_kind("weighted");
      (*req.mutable_policy()->mutable_weights())["fp32"] = i;
      (*req.mutable_policy()->mutable_weights())["alt"] = 10 - i;
      auto p = client.SetPolicy(req);
      if (!p.ok()) {
        e.Error(absl::StrCat("policy w", i), p.status());
        break;
      }
      absl::MutexLock lock(&e.mu);
      e.policy_reason = p->reason();
      e.policy_version = p->version();
      if (job_done && i == 9) break;
    }
  });
  writers.emplace_back([&] {
    for (int i = 1; i <= 9 || !job_done; ++i) {
      v1::SetBatchingRequest req;
      req.set_model("f");
      req.mutable_config()->set_max_batch_size(8);
      req.mutable_config()->set_max_queue_delay_microseconds(100 + i);
      auto b = client.SetBatching(req);
      if (!b.ok()) {
        e.Error(absl::StrCat("batching ", i), b.status());
        break;
      }
      absl::MutexLock lock(&e.mu);
      e.batching_delay = b->batching().max_queue_delay_microseconds();
    }
  });
  writers.emplace_back([&] {
    auto job = StartQuantize(client, "f", 256);
    if (!job.ok()) {
      e.Error("quantize", job.status());
      job_done = true;
      return;
    }
    auto end = client.WatchJob(job->id(), nullptr);
    if (!end.ok()) {
      e.Error("watch", end.status());
    } else if (end->state() != v1::JOB_SUCCEEDED) {
      e.Error("job", absl::InternalError(end->message()));
    }
    job_done = true;
  });
  for (auto& t : writers) t.join();
  {
    absl::MutexLock lock(&e.mu);
    EXPECT_THAT(e.errors, ::testing::IsEmpty());
  }
  VerifyEverythingAcknowledged(client, e, "before kill -9");
  server->Kill9();
  server = std::make_unique<ServerProcess>(store);
  TwinClient again(server->address());
  VerifyEverythingAcknowledged(again, e, "after kill -9 and restart");
}

// --- Bug 4: a job never publishes into a model registered anew ------------

TEST(ConsistencyTest, AJobNeverPublishesIntoAModelRegisteredAnewUnderItsName) {
  ServerProcess server(NewTempDir("store"));
  TwinClient client(server.address());
  ASSERT_TRUE(client.Register(FashionOptions("f"), FashionBytes()).ok());
  ASSERT_TRUE(Calibrate(client, "f", "calib", 0, 2048).ok());
  auto job = StartQuantize(client, "f", 2048);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(WaitUntilCalibrating(client, job->id()).state(), v1::JOB_RUNNING);
  ASSERT_TRUE(client.Unregister("f").ok());
  auto fresh = client.Register(FashionOptions("f"), FashionBytes());
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  auto end = client.WatchJob(job->id(), nullptr);
  ASSERT_TRUE(end.ok()) << end.status();
  EXPECT_NE(end->state(), v1::JOB_SUCCEEDED) << end->message();
  EXPECT_THAT(end->message(), HasSubstr("registered anew"));
  auto info = client.Get("f");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(Names(*info), std::set<std::string>{"fp32"});
}

// --- Bug 5: no write before the stored models are loaded -------------------

TEST(ConsistencyTest, ManagementAnswersUnavailableUntilStoredModelsLoad) {
  const std::string store = NewTempDir("store");
  std::string sha;
  {
    ServerProcess server(store);
    TwinClient client(server.address());
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(
          client.Register(FashionOptions(absl::StrCat("m", i)), FashionBytes())
              .ok());
    }
    sha = client.Get("m0")->variants(0).sha256();
  }
  // Listening, not ready: the 40 models are still loading.
  ServerProcess server(store, {}, /*wait_until_ready=*/false);
  TwinClient client(server.address());
  auto ready = client.ServerReady();
  ASSERT_TRUE(ready.ok()) << ready.status();
  if (*ready) GTEST_SKIP() << "the store loaded before the first call";
  RegisterOptions again = FashionOptions("m0");
  again.replace = true;
  auto reg = client.Register(again, FashionBytes());
  EXPECT_EQ(reg.status().code(), absl::StatusCode::kUnavailable)
      << reg.status();
  EXPECT_THAT(reg.status().message(), HasSubstr("loading"));
  v1::SetTrafficPolicyRequest req;
  req.set_model("m1");
  req.mutable_policy()->set_kind("pinned");
  EXPECT_EQ(client.SetPolicy(req).status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_TRUE(client.WaitForReady(std::chrono::seconds(60)).ok());
  auto m0 = client.Get("m0");
  ASSERT_TRUE(m0.ok());
  EXPECT_EQ(m0->generation(), 1u);
  EXPECT_EQ(m0->variants(0).sha256(), sha);
  EXPECT_EQ(client.List()->size(), 40u);
}

// --- Bug 6: SIGTERM stops running jobs before what they use goes away ------

TEST(ConsistencyTest, SigtermDuringAJobStopsItAndExitsCleanly) {
  const std::string store = NewTempDir("store");
  std::string id;
  {
    ServerProcess server(store);
    TwinClient client(server.address());
    ASSERT_TRUE(client.Register(FashionOptions("f"), FashionBytes()).ok());
    ASSERT_TRUE(Calibrate(client, "f", "calib", 0, 4096).ok());
    auto job = StartQuantize(client, "f", 4096);
    ASSERT_TRUE(job.ok()) << job.status();
    id = job->id();
    ASSERT_EQ(WaitUntilCalibrating(client, id).state(), v1::JOB_RUNNING);
    const int status = server.Stop();
    EXPECT_TRUE(WIFEXITED(status)) << "status " << status << "; log:\n"
                                   << ReadFileOrDie(server.log_path());
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  ServerProcess server(store);
  TwinClient client(server.address());
  auto job = client.GetJob(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->state(),
              ::testing::AnyOf(v1::JOB_CANCELLED, v1::JOB_INTERRUPTED));
  auto info = client.Get("f");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(Names(*info), std::set<std::string>{"fp32"});
}

// --- Bug 8: unregistered models leave no thread and no series -------------

// Threads of the server named by twinserve ("ts-*"): gRPC and LibTorch
// grow and shrink pools of their own.
int Threads(pid_t pid) {
  int n = 0;
  const std::string dir = absl::StrCat("/proc/", pid, "/task");
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::string name;
      std::ifstream(absl::StrCat(dir, "/", e->d_name, "/comm")) >> name;
      n += name.rfind("ts-", 0) == 0;
    }
    closedir(d);
  }
  return n;
}

int SeriesOf(const std::string& text, const std::string& model) {
  int n = 0;
  const std::string label = absl::StrCat("model=\"", model, "\"");
  for (size_t pos = 0; (pos = text.find(label, pos)) != std::string::npos;
       pos += label.size()) {
    ++n;
  }
  return n;
}

TEST(ConsistencyTest, UnregisteredModelsLeaveNoThreadsAndNoSeries) {
  ServerProcess server(NewTempDir("store"));
  TwinClient client(server.address());
  const std::string add_sub = ReadFileOrDie(FixturePath("add_sub.pt"));
  std::mt19937 rng(7);
  int after_warmup = 0;
  for (int round = 0; round < 12; ++round) {
    const std::string name = absl::StrCat("churn", round);
    RegisterOptions o = AddSubOptions(name);
    o.batching.emplace();
    o.batching->set_max_batch_size(8);
    o.batching->set_max_queue_delay_microseconds(200);
    ASSERT_TRUE(client.Register(o, add_sub).ok());
    RegisterOptions alt;
    alt.name = name;
    alt.variant = "alt";
    ASSERT_TRUE(client.Register(alt, add_sub).ok());
    v1::SetTrafficPolicyRequest shadow;
    shadow.set_model(name);
    shadow.mutable_policy()->set_kind("shadow");
    shadow.mutable_policy()->set_candidate("alt");
    ASSERT_TRUE(client.SetPolicy(shadow).ok());
    std::vector<std::thread> load;
    for (int c = 0; c < 4; ++c) {
      load.emplace_back([&, c] {
        std::mt19937 r(c);
        for (int i = 0; i < 5; ++i) {
          auto out = client.Infer(
              name, {::twinserve::testing::RandomFloats("a", {2, 4}, &r),
                     ::twinserve::testing::RandomFloats("b", {2, 4}, &r)});
          EXPECT_TRUE(out.ok()) << out.status();
        }
      });
    }
    for (auto& t : load) t.join();
    const std::string during = Scrape(server.metrics_address());
    EXPECT_GT(SeriesOf(during, name), 0) << during;
    ASSERT_TRUE(client.Unregister(name).ok());
    if (round == 1) after_warmup = Threads(server.pid());
    // Before the redesign each model that ever batched left a ts-batch
    // thread behind: 12 rounds, 12 threads.
  }
  // Batchers and shadow work of removed models finish asynchronously.
  int threads = 0;
  for (int i = 0; i < 50; ++i) {
    threads = Threads(server.pid());
    if (threads <= after_warmup) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_LE(threads, after_warmup);
  const std::string text = Scrape(server.metrics_address());
  int left = 0;
  for (int round = 0; round < 12; ++round) {
    left += SeriesOf(text, absl::StrCat("churn", round));
  }
  EXPECT_EQ(left, 0) << text;
}

}  // namespace
}  // namespace twinserve
