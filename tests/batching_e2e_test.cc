// Dynamic batching end to end: the real twinserve binary, many concurrent
// gRPC clients, batched answers checked against unbatched ones, queue
// limits, deadlines, runtime changes and restarts.
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::AddSubOptions;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

HostTensor Random(const std::string& name, Shape shape, std::mt19937* rng) {
  return ::twinserve::testing::RandomFloats(name, std::move(shape), rng);
}

const float* F(const HostTensor& t) {
  return reinterpret_cast<const float*>(t.data);
}

v1::BatchingConfig Batching(int max_batch, int delay_us, int capacity = 0) {
  v1::BatchingConfig b;
  b.set_max_batch_size(max_batch);
  b.set_max_queue_delay_microseconds(delay_us);
  b.set_queue_capacity(capacity);
  return b;
}

RegisterOptions LinearOptions(const std::string& name) {
  RegisterOptions o;
  o.name = name;
  o.inputs = {{"x", DataType::kFp32, {-1, 784}}};
  o.outputs = {{"y", DataType::kFp32, {-1, 10}}};
  return o;
}

class BatchingE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = NewTempDir("store");
    Start();
  }
  void Start() {
    // Batching as configured (Triton's way): these tests need requests of
    // tiny models to wait for company, which the adaptive default would
    // not make them do (server/serving/batcher.h).
    server_ = std::make_unique<ServerProcess>(
        store_, std::vector<std::string>{"--batch_policy=fixed"});
    client_ = std::make_unique<TwinClient>(server_->address());
  }
  absl::Status SetBatching(const std::string& model, const std::string& v,
                           v1::BatchingConfig config, bool clear = false) {
    v1::SetBatchingRequest req;
    req.set_model(model);
    req.set_variant(v);
    *req.mutable_config() = config;
    req.set_clear(clear);
    return client_->SetBatching(req).status();
  }
  inference::ModelStatisticsResponse Stats(const std::string& model,
                                           const std::string& version) {
    grpc::ClientContext ctx;
    inference::ModelStatisticsRequest req;
    req.set_name(model);
    req.set_version(version);
    inference::ModelStatisticsResponse resp;
    EXPECT_TRUE(client_->oip()->ModelStatistics(&ctx, req, &resp).ok());
    return resp;
  }

  std::string store_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TwinClient> client_;
};

// Elementwise math is exact in any batch: 16 clients' answers must equal
// a + b and a - b bit for bit, and the server must really have batched.
TEST_F(BatchingE2eTest, ConcurrentClientsGetBitIdenticalAnswers) {
  RegisterOptions o = AddSubOptions("as");
  o.batching = Batching(32, 3000);
  ASSERT_TRUE(
      client_->Register(o, ReadFileOrDie(FixturePath("add_sub.pt"))).ok());
  std::atomic<int> failures{0}, mismatches{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 16; ++c) {
    clients.emplace_back([&, c] {
      TwinClient client(server_->address());
      std::mt19937 rng(c);
      for (int i = 0; i < 40; ++i) {
        const int rows = 1 + rng() % 3;
        HostTensor a = Random("a", {rows, 4}, &rng);
        HostTensor b = Random("b", {rows, 4}, &rng);
        auto out = client.Infer("as", {a, b});
        if (!out.ok()) {
          ++failures;
          continue;
        }
        for (int k = 0; k < rows * 4; ++k) {
          if (F(out->outputs[0])[k] != F(a)[k] + F(b)[k] ||
              F(out->outputs[1])[k] != F(a)[k] - F(b)[k]) {
            ++mismatches;
            break;
          }
        }
      }
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(mismatches, 0);
  auto s = Stats("as", "fp32");
  ASSERT_EQ(s.model_stats_size(), 1);
  const auto& m = s.model_stats(0);
  EXPECT_EQ(m.inference_stats().success().count(), 16u * 40u);
  EXPECT_LT(m.execution_count(), m.inference_stats().success().count())
      << "requests were not batched";
  int64_t largest = 0;
  for (const auto& b : m.batch_stats()) {
    largest = std::max<int64_t>(largest, b.batch_size());
  }
  std::printf(
      "640 requests (%llu inferences) in %llu executions; largest "
      "batch %lld rows\n",
      static_cast<unsigned long long>(m.inference_count()),
      static_cast<unsigned long long>(m.execution_count()),
      static_cast<long long>(largest));
  EXPECT_GT(largest, 3);
}

// A matmul may round differently at another row count; FP32 answers stay
// within 1e-5 of the unbatched ones, and INT8-dynamic ones (whose
// activation scale is taken over the whole batch) within its tolerance.
TEST_F(BatchingE2eTest, BatchedMatchesUnbatchedForFp32AndInt8) {
  RegisterOptions o = LinearOptions("lin");
  o.batching = Batching(16, 2000);
  ASSERT_TRUE(
      client_->Register(o, ReadFileOrDie(FixturePath("linear.pt"))).ok());
  std::mt19937 rng(11);
  HostTensor calib = Random("x", {64, 784}, &rng);
  ASSERT_TRUE(
      client_->UploadCalibration("lin", "calib", {calib}, {}, false).ok());
  for (const char* mode : {"dynamic", "static"}) {
    v1::QuantizeRequest q;
    q.set_model("lin");
    q.set_mode(mode);
    // A random linear layer on random inputs: its top-1 is fragile, and
    // accuracy is not what this test is about.
    q.set_max_agreement_loss(100);
    auto job = client_->Quantize(q);
    ASSERT_TRUE(job.ok()) << job.status();
    auto end = client_->WatchJob(job->id(), nullptr);
    ASSERT_TRUE(end.ok());
    ASSERT_EQ(end->state(), v1::JOB_SUCCEEDED)
        << mode << ": " << end->message();
  }
  // The INT8 variants have their own settings: larger batches.
  ASSERT_TRUE(SetBatching("lin", "int8-dynamic", Batching(32, 2000)).ok());
  ASSERT_TRUE(SetBatching("lin", "int8", Batching(32, 2000)).ok());

  constexpr int kClients = 12, kEach = 30;
  std::vector<HostTensor> inputs;
  for (int i = 0; i < kClients * kEach; ++i) {
    inputs.push_back(Random("x", {1 + static_cast<int>(rng() % 2), 784}, &rng));
  }
  const char* const kVariants[] = {"fp32", "int8-dynamic", "int8"};
  auto variant_of = [&](int i) { return kVariants[i % 3]; };
  std::vector<HostTensor> batched(inputs.size());
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      TwinClient client(server_->address());
      for (int i = c * kEach; i < (c + 1) * kEach; ++i) {
        auto out = client.Infer("lin", {inputs[i]}, variant_of(i));
        ASSERT_TRUE(out.ok()) << out.status();
        batched[i] = std::move(out->outputs[0]);
      }
    });
  }
  for (auto& t : clients) t.join();
  for (const char* v : kVariants) {
    const auto& m = Stats("lin", v).model_stats(0);
    EXPECT_LT(m.execution_count(), m.inference_stats().success().count())
        << v << " was not batched";
  }

  // Now batching off for the whole model at runtime; the same inputs one
  // at a time.
  ASSERT_TRUE(SetBatching("lin", "int8-dynamic", {}, /*clear=*/true).ok());
  ASSERT_TRUE(SetBatching("lin", "int8", {}, /*clear=*/true).ok());
  ASSERT_TRUE(SetBatching("lin", "", Batching(0, 0)).ok());
  auto info = client_->Get("lin");
  ASSERT_TRUE(info.ok());
  for (const auto& v : info->variants()) {
    EXPECT_EQ(v.batching().max_batch_size(), 0) << v.name();
  }
  const uint64_t executions_before =
      Stats("lin", "fp32").model_stats(0).execution_count();
  // Worst |batched - alone| and largest |output| per variant.
  float worst[3] = {0, 0, 0}, scale[3] = {0, 0, 0};
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto alone = client_->Infer("lin", {inputs[i]}, variant_of(i));
    ASSERT_TRUE(alone.ok()) << alone.status();
    const HostTensor& a = alone->outputs[0];
    ASSERT_EQ(a.shape, batched[i].shape);
    for (size_t k = 0; k < a.byte_size / 4; ++k) {
      worst[i % 3] =
          std::max(worst[i % 3], std::abs(F(a)[k] - F(batched[i])[k]));
      scale[i % 3] = std::max(scale[i % 3], std::abs(F(a)[k]));
    }
  }
  const auto& m = Stats("lin", "fp32").model_stats(0);
  EXPECT_EQ(m.execution_count() - executions_before, inputs.size() / 3)
      << "with batching off every request runs alone";
  std::printf(
      "max |batched - alone| (largest |output|): fp32 %g (%g), "
      "int8-dynamic %g (%g), int8 %g (%g)\n",
      worst[0], scale[0], worst[1], scale[1], worst[2], scale[2]);
  EXPECT_LE(worst[0], 1e-5);
  // Dynamic INT8 takes the activation scale over the whole batch.
  EXPECT_LE(worst[1], 0.02 * scale[1]);
  // Static INT8 has fixed scales: rows do not influence each other.
  EXPECT_LE(worst[2], 1e-5);
}

TEST_F(BatchingE2eTest, FullQueueIsRefusedAtOnceAndDeadlinesDropRequests) {
  RegisterOptions o = AddSubOptions("as");
  // Requests wait up to 3 s for company; at most 2 may wait.
  o.batching = Batching(64, 3'000'000, 2);
  ASSERT_TRUE(
      client_->Register(o, ReadFileOrDie(FixturePath("add_sub.pt"))).ok());
  std::mt19937 rng(2);
  const HostTensor a = Random("a", {1, 4}, &rng), b = Random("b", {1, 4}, &rng);
  std::vector<std::thread> waiting;
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i) {
    waiting.emplace_back([&] {
      TwinClient client(server_->address());
      if (client.Infer("as", {a, b}).ok()) ++ok;
    });
  }
  // Both wait in the queue, and /metrics says so (polled: on a loaded
  // machine the two clients may take a while to connect).
  auto queued = [&] {
    return ::twinserve::testing::MetricValue(
        ::twinserve::testing::Scrape(server_->metrics_address()),
        "twinserve_queued_requests{model=\"as\",variant=\"fp32\"}");
  };
  for (int i = 0; i < 100 && queued() != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(queued(), 2);
  const auto t0 = std::chrono::steady_clock::now();
  auto refused = client_->Infer("as", {a, b});
  const double refused_ms = std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - t0)
                                .count();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("queue_capacity 2"));
  EXPECT_LT(refused_ms, 1500) << "a full queue must answer at once";
  for (auto& t : waiting) t.join();
  EXPECT_EQ(ok, 2);
  EXPECT_EQ(queued(), 0);

  // A request whose deadline passes while it waits is dropped unrun.
  const uint64_t executions = Stats("as", "").model_stats(0).execution_count();
  inference::ModelInferRequest req =
      MakeInferRequest("as", {a, b}, "", {}, "late");
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(300));
  inference::ModelInferResponse resp;
  grpc::Status st = client_->oip()->ModelInfer(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const auto& m = Stats("as", "").model_stats(0);
  EXPECT_EQ(m.execution_count(), executions) << "an expired request ran";
  EXPECT_EQ(m.inference_stats().fail().count(), 2u);  // refused + expired
}

// SIGTERM drains: a request waiting in a batch queue is still answered, and
// the process exits 0. (Shared libraries start threads before main, so a
// mask-and-sigwait scheme would let SIGTERM kill the process outright.)
TEST_F(BatchingE2eTest, SigtermAnswersQueuedRequestsThenExitsCleanly) {
  RegisterOptions o = AddSubOptions("as");
  o.batching = Batching(64, 1'500'000);  // waits 1.5 s for company
  ASSERT_TRUE(
      client_->Register(o, ReadFileOrDie(FixturePath("add_sub.pt"))).ok());
  std::mt19937 rng(9);
  const HostTensor a = Random("a", {1, 4}, &rng), b = Random("b", {1, 4}, &rng);
  absl::Status answered = absl::UnknownError("not yet");
  std::thread waiting([&] {
    TwinClient client(server_->address());
    answered = client.Infer("as", {a, b}).status();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int status = server_->Stop();
  waiting.join();
  EXPECT_TRUE(answered.ok()) << answered;
  EXPECT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(BatchingE2eTest, SettingsAreVisibleValidatedAndSurviveKill9) {
  RegisterOptions o = LinearOptions("lin");
  o.batching = Batching(8, 500);
  o.batching->add_preferred_batch_sizes(4);
  ASSERT_TRUE(
      client_->Register(o, ReadFileOrDie(FixturePath("linear.pt"))).ok());
  {
    grpc::ClientContext ctx;
    inference::ModelMetadataRequest req;
    req.set_name("lin");
    inference::ModelMetadataResponse md;
    ASSERT_TRUE(client_->oip()->ModelMetadata(&ctx, req, &md).ok());
    EXPECT_EQ(md.properties().at("dynamic_batching"), "true");
    EXPECT_EQ(md.properties().at("max_batch_size"), "8");
    EXPECT_EQ(md.properties().at("max_queue_delay_microseconds"), "500");
    EXPECT_EQ(md.properties().at("preferred_batch_sizes"), "4");
    EXPECT_EQ(md.properties().at("queue_capacity"), "1024");
  }
  {
    // As Triton: max_batch_size > 0 and dims without the batch dim.
    grpc::ClientContext ctx;
    inference::ModelConfigRequest req;
    req.set_name("lin");
    inference::ModelConfigResponse cfg;
    ASSERT_TRUE(client_->oip()->ModelConfig(&ctx, req, &cfg).ok());
    EXPECT_EQ(cfg.config().max_batch_size(), 8);
    EXPECT_THAT(cfg.config().input(0).dims(), ::testing::ElementsAre(784));
    EXPECT_THAT(cfg.config().dynamic_batching().preferred_batch_size(),
                ::testing::ElementsAre(4));
    EXPECT_EQ(cfg.config().dynamic_batching().max_queue_delay_microseconds(),
              500u);
  }
  // Bad settings name the problem.
  EXPECT_EQ(SetBatching("nope", "", Batching(4, 0)).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(SetBatching("lin", "int8", Batching(4, 0)).code(),
            absl::StatusCode::kNotFound);
  absl::Status bad = SetBatching("lin", "", Batching(100000, 0));
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("max_batch_size"));
  v1::BatchingConfig pref = Batching(8, 0);
  pref.add_preferred_batch_sizes(16);
  EXPECT_THAT(SetBatching("lin", "", pref).message(),
              HasSubstr("preferred batch size 16"));
  RegisterOptions fixed = LinearOptions("fixed");
  fixed.inputs[0].shape = {1, 784};
  fixed.outputs[0].shape = {1, 10};
  ASSERT_TRUE(
      client_->Register(fixed, ReadFileOrDie(FixturePath("linear.pt"))).ok());
  absl::Status unbatchable = SetBatching("fixed", "", Batching(8, 0));
  EXPECT_EQ(unbatchable.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unbatchable.message(), HasSubstr("input 'x' is [1, 784]"));
  fixed.name = "fixed2";
  fixed.batching = Batching(8, 0);
  EXPECT_EQ(client_->Register(fixed, ReadFileOrDie(FixturePath("linear.pt")))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);

  // Changed at runtime, then the process is killed: the change stays.
  ASSERT_TRUE(SetBatching("lin", "", Batching(16, 250, 100)).ok());
  server_->Kill9();
  Start();
  auto info = client_->Get("lin");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->batching().max_batch_size(), 16);
  EXPECT_EQ(info->batching().max_queue_delay_microseconds(), 250u);
  EXPECT_EQ(info->batching().queue_capacity(), 100);
  EXPECT_EQ(info->variants(0).batching().max_batch_size(), 16);
  std::mt19937 rng(3);
  EXPECT_TRUE(client_->Infer("lin", {Random("x", {3, 784}, &rng)}).ok());
}

}  // namespace
}  // namespace twinserve
