#include "server/serving/engine.h"

#include <cstring>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::AddSubSignature;

using ::testing::HasSubstr;

HostTensor Floats(const std::string& name, Shape shape, float v) {
  const int64_t n = ElementCount(shape);
  std::vector<float> values(n, v);
  std::string bytes(n * 4, '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return HostTensor::Owned(name, DataType::kFp32, shape, bytes);
}

Signature TwoInputs() {
  Signature s;
  s.inputs = {{"a", DataType::kFp32, {-1, 4}}, {"b", DataType::kFp32, {-1, 4}}};
  s.outputs = {{"sum", DataType::kFp32, {-1, 4}}};
  return s;
}

TEST(MatchInputsTest, OrdersByDeclaration) {
  auto m = MatchInputs(TwoInputs(),
                       {Floats("b", {1, 4}, 2), Floats("a", {1, 4}, 1)});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)[0].name, "a");
  EXPECT_EQ((*m)[1].name, "b");
}

TEST(MatchInputsTest, UnknownMissingAndDuplicateInputs) {
  auto m = MatchInputs(TwoInputs(), {Floats("c", {1, 4}, 0)});
  EXPECT_THAT(m.status().message(), HasSubstr("unknown input 'c'"));
  EXPECT_THAT(m.status().message(), HasSubstr("inputs are a, b"));
  m = MatchInputs(TwoInputs(), {Floats("a", {1, 4}, 0)});
  EXPECT_THAT(m.status().message(), HasSubstr("missing input 'b'"));
  m = MatchInputs(TwoInputs(),
                  {Floats("a", {1, 4}, 0), Floats("a", {1, 4}, 0)});
  EXPECT_THAT(m.status().message(), HasSubstr("given twice"));
}

// Two real add_sub servables ("fp32", "alt") behind a fixed decision: the
// engine's side of routing, without a registry.
class FixedRouter : public ServableRouter {
 public:
  explicit FixedRouter(SchedulerFactory* factory) {
    const Signature sig = AddSubSignature();
    for (const char* v : {"fp32", "alt"}) {
      auto runner = Runner::Load(
          ::twinserve::testing::FixturePath("add_sub.pt"), sig, {});
      EXPECT_TRUE(runner.ok()) << runner.status();
      auto s = std::make_shared<Servable>();
      s->model = "m";
      s->variant = v;
      s->runner = std::move(*runner);
      s->stats = std::make_shared<VariantStats>();
      s->scheduler = factory->Make(v, s->runner, s->stats, s->batching);
      servables_[v] = s;
    }
  }
  absl::StatusOr<Acquired> Acquire(const std::string& model,
                                   const std::string& version,
                                   absl::string_view) const override {
    if (model != "m") return absl::NotFoundError("no model " + model);
    Acquired a;
    a.served = servables_.at(version.empty() ? "fp32" : version);
    if (version.empty() && shadow_) a.comparison = servables_.at("alt");
    return a;
  }
  const Servable& Get(const std::string& v) { return *servables_.at(v); }
  bool shadow_ = false;

 private:
  std::map<std::string, ServableHandle> servables_;
};

TEST(InferenceEngineTest, ConcurrentRequestsAndStatsRecordedOnce) {
  SchedulerFactory factory({2, 150});
  FixedRouter router(&factory);
  InferenceEngine engine(&router, {});
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        InferRequest req;
        req.model = "m";
        req.inputs = {Floats("a", {2, 4}, t), Floats("b", {2, 4}, i)};
        req.requested_outputs = {"diff"};
        auto r = engine.InferSync(std::move(req));
        if (!r.ok() || r->outputs.size() != 1 || r->variant != "fp32" ||
            reinterpret_cast<const float*>(r->outputs[0].data)[7] != t - i) {
          ++wrong;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  StatsSnapshot s = router.Get("fp32").stats->Snapshot();
  EXPECT_EQ(s.execution_count, 200u);
  EXPECT_EQ(s.inference_count, 400u);
  EXPECT_EQ(s.success.count, 200u);
  EXPECT_EQ(s.request_seconds.count, 200u);
  EXPECT_EQ(s.inflight, 0);

  InferRequest bad;
  bad.model = "m";
  bad.inputs = {Floats("a", {2, 4}, 0)};
  EXPECT_EQ(engine.InferSync(std::move(bad)).status().code(),
            absl::StatusCode::kInvalidArgument);
  s = router.Get("fp32").stats->Snapshot();
  EXPECT_EQ(s.fail.count, 1u);
  EXPECT_EQ(s.failures.at(absl::StatusCode::kInvalidArgument), 1u);
  EXPECT_EQ(s.inflight, 0);
}

// Requests are admitted by the bytes they hold, not only by count: while
// one 64-byte request is being answered, a second would pass a 100-byte
// budget and is refused, naming the limit.
TEST(InferenceEngineTest, RequestsAreAdmittedByBytes) {
  SchedulerFactory factory({1, 0});
  FixedRouter router(&factory);
  EngineOptions options;
  options.max_inflight_bytes = 100;
  InferenceEngine engine(&router, options);
  auto request = [] {
    InferRequest req;
    req.model = "m";
    req.inputs = {Floats("a", {2, 4}, 1), Floats("b", {2, 4}, 2)};
    return req;
  };
  absl::Notification answering, release;
  std::atomic<bool> first_ok{false};
  engine.Infer(request(), [&](absl::StatusOr<InferResult> r) {
    first_ok = r.ok();
    answering.Notify();
    release.WaitForNotification();  // still answering: bytes held
  });
  answering.WaitForNotification();
  EXPECT_EQ(engine.inflight_bytes(), 64u);
  auto refused = engine.InferSync(request());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(),
              ::testing::HasSubstr("--max_inflight_bytes=100"));
  release.Notify();
  while (engine.inflight_bytes() != 0) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_TRUE(first_ok);
  EXPECT_TRUE(engine.InferSync(request()).ok());  // admitted again
  while (engine.inflight_bytes() != 0) absl::SleepFor(absl::Milliseconds(1));
}

TEST(InferenceEngineTest, RoutingFailuresAreCountedWithoutTheClientsName) {
  SchedulerFactory factory({1, 150});
  FixedRouter router(&factory);
  InferenceEngine engine(&router, {});
  for (int i = 0; i < 3; ++i) {
    InferRequest req;
    req.model = "no-such-model-" + std::to_string(i);
    EXPECT_EQ(engine.InferSync(std::move(req)).status().code(),
              absl::StatusCode::kNotFound);
  }
  EXPECT_EQ(engine.UnroutedFailures().at(absl::StatusCode::kNotFound), 3u);
}

TEST(InferenceEngineTest, ComparisonsRunOffThePathAndFeedTheCandidate) {
  SchedulerFactory factory({1, 150});
  FixedRouter router(&factory);
  router.shadow_ = true;
  InferenceEngine engine(&router, {});
  for (int i = 0; i < 20; ++i) {
    InferRequest req;
    req.model = "m";
    req.inputs = {Floats("a", {3, 4}, i), Floats("b", {3, 4}, 1)};
    auto r = engine.InferSync(std::move(req));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->variant, "fp32");
  }
  // Shadow runs happen after the answer: wait for them.
  StatsSnapshot alt;
  for (int i = 0; i < 500; ++i) {
    alt = router.Get("alt").stats->Snapshot();
    if (alt.comparisons + alt.comparison_drops >= 20) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(alt.comparisons + alt.comparison_drops, 20u);
  EXPECT_GT(alt.comparisons, 0u);
  EXPECT_EQ(alt.top1_disagreements, 0u);  // identical models
  EXPECT_EQ(alt.success.count, 0u);       // shadow runs answer no one
  EXPECT_EQ(router.Get("fp32").stats->Snapshot().comparisons, 0u);
}

}  // namespace
}  // namespace twinserve
