// End to end: calibration upload, quantization jobs and INT8 serving on the
// real twinserve binary, with the Fashion-MNIST data from the Debian package.
#include <grpcpp/grpcpp.h>

#include <cstring>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/idx.h"
#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

using ::twinserve::testing::FashionSplit;
using ::twinserve::testing::LoadFashionSplit;
using Split = FashionSplit;

HostTensor Rows(const HostTensor& t, int64_t begin, int64_t count) {
  return ::twinserve::testing::RowsOf(t, begin, count);
}

RegisterOptions Fashion(const std::string& name) {
  return ::twinserve::testing::FashionOptions(name);
}

v1::Job WaitForJob(TwinClient& client, const std::string& id) {
  auto job = client.WatchJob(id, nullptr);
  EXPECT_TRUE(job.ok()) << job.status();
  return job.ok() ? *job : v1::Job();
}

class QuantizeE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    train_ = new Split(LoadFashionSplit("train"));
    test_ = new Split(LoadFashionSplit("t10k"));
  }
  void Start(std::vector<std::string> flags = {}) {
    server_ = std::make_unique<ServerProcess>(store_, flags);
    client_ = std::make_unique<TwinClient>(server_->address());
  }
  void SetUp() override { store_ = NewTempDir("store"); }
  void RegisterAndCalibrate(const std::string& name, int64_t calib,
                            int64_t eval,
                            const std::string& file = "fashion_cnn.pt") {
    ASSERT_TRUE(
        client_->Register(Fashion(name), ReadFileOrDie(FixturePath(file)))
            .ok());
    auto info = client_->UploadCalibration(
        name, "calib", {Rows(train_->images, 0, calib)},
        std::vector<int64_t>(train_->labels.begin(),
                             train_->labels.begin() + calib),
        false);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->samples(), calib);
    EXPECT_TRUE(info->labels());
    if (eval > 0) {
      auto e = client_->UploadCalibration(
          name, "eval", {Rows(test_->images, 0, eval)},
          std::vector<int64_t>(test_->labels.begin(),
                               test_->labels.begin() + eval),
          false, 500);
      ASSERT_TRUE(e.ok()) << e.status();
    }
  }
  // Labelled accuracy of one variant, through ModelInfer, batches of 100.
  double AccuracyViaModelInfer(const std::string& model,
                               const std::string& version, int64_t n) {
    int64_t correct = 0;
    for (int64_t b = 0; b < n; b += 100) {
      const int64_t k = std::min<int64_t>(100, n - b);
      HostTensor x = Rows(test_->images, b, k);
      x.name = "image";
      auto out = client_->Infer(model, {x}, version);
      EXPECT_TRUE(out.ok()) << out.status();
      if (!out.ok()) return -1;
      EXPECT_EQ(out->version, version);
      const float* logits =
          reinterpret_cast<const float*>(out->outputs[0].data);
      for (int64_t r = 0; r < k; ++r) {
        const int64_t top =
            std::max_element(logits + r * 10, logits + r * 10 + 10) -
            (logits + r * 10);
        correct += top == test_->labels[b + r];
      }
    }
    return 100.0 * correct / n;
  }

  static Split* train_;
  static Split* test_;
  std::string store_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TwinClient> client_;
};
Split* QuantizeE2eTest::train_ = nullptr;
Split* QuantizeE2eTest::test_ = nullptr;

TEST_F(QuantizeE2eTest, QuantizeServeReportAndSurviveRestart) {
  Start();
  RegisterAndCalibrate("fashion", 512, 10000);
  v1::QuantizeRequest req;
  req.set_model("fashion");
  req.set_eval_set("eval");
  auto job = client_->Quantize(req);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_RUNNING);
  // FP32 serves while the job runs.
  HostTensor one = Rows(test_->images, 0, 1);
  one.name = "image";
  EXPECT_TRUE(client_->Infer("fashion", {one}, "fp32").ok());
  std::vector<std::string> stages;
  auto done = client_->WatchJob(job->id(), [&](const v1::Job& j) {
    if (stages.empty() || stages.back() != j.stage())
      stages.push_back(j.stage());
  });
  ASSERT_TRUE(done.ok());
  ASSERT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->message();
  EXPECT_GE(stages.size(), 3u);

  auto report = client_->GetReport("fashion", "int8");
  ASSERT_TRUE(report.ok()) << report.status();
  std::printf(
      "report: fp32 %.2f%% int8 %.2f%% agreement %.2f%%, b1 %.3f/%.3f "
      "ms, b32 %.2f/%.2f ms, %.1f s\n",
      report->fp32_accuracy(), report->int8_accuracy(),
      report->top1_agreement(), report->fp32_latency_ms_b1(),
      report->int8_latency_ms_b1(), report->fp32_latency_ms_b32(),
      report->int8_latency_ms_b32(), report->duration_seconds());
  EXPECT_EQ(report->eval_samples(), 10000);
  EXPECT_LE(report->fp32_accuracy() - report->int8_accuracy(), 0.3);
  EXPECT_LT(report->int8_serialized_bytes(), report->fp32_serialized_bytes());
  EXPECT_FALSE(report->layers().empty());
  // Method auto: the recipe was searched and the candidates reported.
  EXPECT_TRUE(report->searched());
  EXPECT_TRUE(report->equalized());
  EXPECT_GE(report->candidates_size(), 4);

  // The report agrees with an independent evaluation through ModelInfer.
  const double fp32 = AccuracyViaModelInfer("fashion", "fp32", 10000);
  const double int8 = AccuracyViaModelInfer("fashion", "int8", 10000);
  std::printf("ModelInfer: fp32 %.2f%% int8 %.2f%%\n", fp32, int8);
  EXPECT_NEAR(fp32, report->fp32_accuracy(), 0.05);
  EXPECT_NEAR(int8, report->int8_accuracy(), 0.05);

  HostTensor batch = Rows(test_->images, 0, 16);
  batch.name = "image";
  auto before = client_->Infer("fashion", {batch}, "int8");
  ASSERT_TRUE(before.ok());
  server_->Kill9();
  Start();
  auto info = client_->Get("fashion");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->variants_size(), 2);
  EXPECT_EQ(info->variants(1).name(), "int8");
  EXPECT_EQ(info->variants(1).state(), v1::READY);
  auto after = client_->Infer("fashion", {batch}, "int8");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(std::string(after->outputs[0].data, after->outputs[0].byte_size),
            std::string(before->outputs[0].data, before->outputs[0].byte_size))
      << "the reloaded INT8 variant must answer bit-identically";
  EXPECT_TRUE(client_->GetReport("fashion", "int8").ok());
  // Loaded, not recalibrated: no new job ran.
  EXPECT_EQ(client_->ListJobs("fashion")->size(), 1u);
}

TEST_F(QuantizeE2eTest, OutlierChannelsQuantizeWithTheDefaultRecipe) {
  // The bundled CNN with two channels per block 200x wider (FP32 outputs
  // unchanged): plain min/max INT8 loses 75 points on it
  // (quant/static_recipe_test). The default recipe, asked as an operator
  // would, keeps it within 0.3 point, and the report is what ModelInfer
  // sees.
  Start();
  RegisterAndCalibrate("outlier", 512, 10000, "fashion_cnn_outlier.pt");
  v1::QuantizeRequest req;
  req.set_model("outlier");
  req.set_eval_set("eval");
  req.set_auto_fallback(true);
  req.set_max_accuracy_loss(0.3);
  auto job = client_->Quantize(req);
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::Job done = WaitForJob(*client_, job->id());
  ASSERT_EQ(done.state(), v1::JOB_SUCCEEDED) << done.message();
  auto report = client_->GetReport("outlier", "int8");
  ASSERT_TRUE(report.ok()) << report.status();
  std::printf(
      "outlier report: method %s, fp32 %.2f%% int8 %.2f%%, b1 %.3f/%.3f ms "
      "(%.2fx), %d trials, %.1f s\n",
      report->method().c_str(), report->fp32_accuracy(),
      report->int8_accuracy(), report->fp32_latency_ms_b1(),
      report->int8_latency_ms_b1(),
      report->int8_latency_ms_b1() / report->fp32_latency_ms_b1(),
      report->trials(), report->duration_seconds());
  EXPECT_LE(report->fp32_accuracy() - report->int8_accuracy(), 0.3);
  EXPECT_TRUE(report->equalized());
  bool rescaled = false;
  for (const auto& line : report->rescaling()) {
    rescaled = rescaled || line.find("block1.conv1 -> block1.conv2") == 0;
  }
  EXPECT_TRUE(rescaled);
  const double fp32 = AccuracyViaModelInfer("outlier", "fp32", 10000);
  const double int8 = AccuracyViaModelInfer("outlier", "int8", 10000);
  std::printf("ModelInfer: fp32 %.2f%% int8 %.2f%%\n", fp32, int8);
  EXPECT_NEAR(fp32, report->fp32_accuracy(), 0.05);
  EXPECT_NEAR(int8, report->int8_accuracy(), 0.05);
}

TEST_F(QuantizeE2eTest, BadCalibrationAndQuantizeRequests) {
  Start({"--max_calibration_samples=100"});
  ASSERT_TRUE(client_
                  ->Register(Fashion("fashion"),
                             ReadFileOrDie(FixturePath("fashion_cnn.pt")))
                  .ok());
  v1::QuantizeRequest req;
  req.set_model("fashion");
  auto job = client_->Quantize(req);
  EXPECT_EQ(job.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(job.status().message(), HasSubstr("no calibration set 'calib'"));

  // Wrong sample shape.
  HostTensor wrong = HostTensor::Owned("image", DataType::kFp32, {2, 1, 27, 28},
                                       std::string(2 * 27 * 28 * 4, '\0'));
  auto up = client_->UploadCalibration("fashion", "calib", {wrong}, {}, false);
  EXPECT_EQ(up.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(up.status().message(), HasSubstr("input 'image'"));
  // Past the limit.
  up = client_->UploadCalibration("fashion", "calib",
                                  {Rows(train_->images, 0, 101)}, {}, false);
  EXPECT_EQ(up.status().code(), absl::StatusCode::kResourceExhausted);
  // Header only: an empty set is refused.
  grpc::ClientContext ctx;
  v1::CalibrationSetInfo resp;
  auto writer = client_->management()->UploadCalibration(&ctx, &resp);
  v1::UploadCalibrationRequest header;
  header.mutable_header()->set_model("fashion");
  ASSERT_TRUE(writer->Write(header));
  writer->WritesDone();
  grpc::Status st = writer->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  // Unknown model.
  up = client_->UploadCalibration("ghost", "calib",
                                  {Rows(train_->images, 0, 4)}, {}, false);
  EXPECT_EQ(up.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(client_->ListCalibrationSets("fashion")->empty());

  // Options the server does not have.
  req.set_method("magic");
  EXPECT_EQ(client_->Quantize(req).status().code(),
            absl::StatusCode::kInvalidArgument);
  req.set_method("");
  req.set_mode("int4");
  EXPECT_EQ(client_->Quantize(req).status().code(),
            absl::StatusCode::kInvalidArgument);
  req.set_mode("");
  // Numbers out of range, NaN and infinity are named.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  auto refused = [&](auto set, const char* field) {
    v1::QuantizeRequest bad = req;
    set(bad);
    auto st = client_->Quantize(bad).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(st.message(), HasSubstr(field));
  };
  refused([&](v1::QuantizeRequest& r) { r.set_percentile(nan); }, "percentile");
  refused([&](v1::QuantizeRequest& r) { r.set_time_limit_seconds(inf); },
          "time_limit_seconds");
  refused([&](v1::QuantizeRequest& r) { r.set_max_agreement_loss(nan); },
          "max_agreement_loss");
  // Negative disables the check (as the proto says); past 100 is nonsense.
  refused([&](v1::QuantizeRequest& r) { r.set_max_accuracy_loss(101); },
          "max_accuracy_loss");
  refused([](v1::QuantizeRequest& r) { r.set_max_trials(-3); }, "max_trials");
}

TEST_F(QuantizeE2eTest, ModelWithoutQuantizableOpsFailsAndFp32Serves) {
  Start();
  ASSERT_TRUE(client_
                  ->Register(::twinserve::testing::AddSubOptions("addsub"),
                             ReadFileOrDie(FixturePath("add_sub.pt")))
                  .ok());
  HostTensor a = HostTensor::Owned("a", DataType::kFp32, {8, 4},
                                   std::string(8 * 16, '\0'));
  HostTensor b = a;
  b.name = "b";
  ASSERT_TRUE(
      client_->UploadCalibration("addsub", "calib", {a, b}, {}, false).ok());
  v1::QuantizeRequest req;
  req.set_model("addsub");
  auto job = client_->Quantize(req);
  ASSERT_TRUE(job.ok());
  v1::Job end = WaitForJob(*client_, job->id());
  EXPECT_EQ(end.state(), v1::JOB_FAILED);
  EXPECT_THAT(end.message(), HasSubstr("no op that static INT8"));
  auto info = client_->Get("addsub");
  EXPECT_EQ(info->variants_size(), 1);
  EXPECT_EQ(info->state(), v1::READY);
  EXPECT_TRUE(client_->Infer("addsub", {a, b}).ok());
}

TEST_F(QuantizeE2eTest, CancelAndConcurrentQuantize) {
  Start();
  RegisterAndCalibrate("fashion", 512, 10000);
  v1::QuantizeRequest req;
  req.set_model("fashion");
  req.set_eval_set("eval");
  req.set_method("entropy");
  auto job = client_->Quantize(req);
  ASSERT_TRUE(job.ok());
  auto second = client_->Quantize(req);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(second.status().message(), HasSubstr("one job per model"));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ASSERT_TRUE(client_->CancelJob(job->id()).ok());
  v1::Job end = WaitForJob(*client_, job->id());
  EXPECT_EQ(end.state(), v1::JOB_CANCELLED) << end.message();
  auto info = client_->Get("fashion");
  ASSERT_EQ(info->variants_size(), 1) << "a cancelled job publishes nothing";
  EXPECT_EQ(client_->Infer("fashion", {Rows(test_->images, 0, 1)}, "int8")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(ListDir(store_ + "/staging")->empty());
}

TEST_F(QuantizeE2eTest, KillNineMidJobShowsInterruptedAndPublishesNothing) {
  Start();
  RegisterAndCalibrate("fashion", 512, 10000);
  v1::QuantizeRequest req;
  req.set_model("fashion");
  req.set_eval_set("eval");
  req.set_method("entropy");
  auto job = client_->Quantize(req);
  ASSERT_TRUE(job.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  server_->Kill9();
  Start();
  auto after = client_->GetJob(job->id());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state(), v1::JOB_INTERRUPTED);
  auto info = client_->Get("fashion");
  ASSERT_EQ(info->variants_size(), 1);
  EXPECT_EQ(info->state(), v1::READY);
  EXPECT_TRUE(ListDir(store_ + "/staging")->empty());
  // The sets survived; a new job can run.
  EXPECT_EQ(client_->ListCalibrationSets("fashion")->size(), 2u);
}

TEST_F(QuantizeE2eTest, DynamicAndBf16VariantsServeSideBySide) {
  Start();
  RegisterAndCalibrate("fashion", 128, 0);
  v1::QuantizeRequest req;
  req.set_model("fashion");
  req.set_mode("fp16");
  auto fp16 = client_->Quantize(req);
  EXPECT_EQ(fp16.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(fp16.status().message(), HasSubstr("no Half kernels"));
  for (const char* mode : {"dynamic", "bf16", "static"}) {
    req.set_mode(mode);
    auto job = client_->Quantize(req);
    ASSERT_TRUE(job.ok()) << mode << ": " << job.status();
    v1::Job end = WaitForJob(*client_, job->id());
    ASSERT_EQ(end.state(), v1::JOB_SUCCEEDED) << mode << ": " << end.message();
  }
  auto info = client_->Get("fashion");
  ASSERT_TRUE(info.ok());
  std::vector<std::string> names;
  for (const auto& v : info->variants()) names.push_back(v.name());
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("fp32", "int8",
                                                     "int8-dynamic", "bf16"));
  HostTensor x = Rows(test_->images, 0, 8);
  x.name = "image";
  for (const char* v : {"fp32", "int8", "int8-dynamic", "bf16"}) {
    auto out = client_->Infer("fashion", {x}, v);
    ASSERT_TRUE(out.ok()) << v << ": " << out.status();
    EXPECT_EQ(out->version, v);
  }
  auto report = client_->GetReport("fashion", "bf16");
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->mode(), "bf16");
}

// The Linear-only Fashion MLP in the modes on twinserve's kernels, through
// the job worker, served side by side, reloaded after kill -9.
TEST_F(QuantizeE2eTest, WeightOnlyVariantsServeAndSurviveKill9) {
  Start();
  RegisterAndCalibrate("mlp", 256, 1000, "fashion_mlp.pt");
  for (const char* mode : {"int8-weight", "int4-weight", "dynamic"}) {
    v1::QuantizeRequest req;
    req.set_model("mlp");
    req.set_mode(mode);
    req.set_eval_set("eval");
    if (std::string(mode) == "int4-weight") req.set_group_size(64);
    auto job = client_->Quantize(req);
    ASSERT_TRUE(job.ok()) << mode << ": " << job.status();
    v1::Job end = WaitForJob(*client_, job->id());
    ASSERT_EQ(end.state(), v1::JOB_SUCCEEDED) << mode << ": " << end.message();
  }
  auto report = client_->GetReport("mlp", "int4-weight");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->mode(), "int4-weight");
  EXPECT_FALSE(report->kernel_path().empty());
  ASSERT_EQ(report->linear_kernels_size(), 3);
  EXPECT_EQ(report->linear_kernels(0).layer(), "fc1");
  EXPECT_EQ(report->linear_kernels(0).kernel(), "twinserve int4-weight g64");
  EXPECT_GE(report->linear_kernels(0).awq_alpha(), 0);
  auto dynamic = client_->GetReport("mlp", "int8-dynamic");
  ASSERT_TRUE(dynamic.ok());
  for (const auto& k : dynamic->linear_kernels()) {
    EXPECT_GT(k.twinserve_ms_b1(), 0) << k.layer();
    EXPECT_GT(k.libtorch_ms_b1(), 0) << k.layer();
  }
  const double fp32 = AccuracyViaModelInfer("mlp", "fp32", 1000);
  std::map<std::string, std::string> before;
  HostTensor x = Rows(test_->images, 0, 4);
  x.name = "image";
  for (const char* v : {"int8-weight", "int4-weight", "int8-dynamic"}) {
    const double acc = AccuracyViaModelInfer("mlp", v, 1000);
    std::printf("%s: %.1f%% (fp32 %.1f%%, 1,000 test images)\n", v, acc, fp32);
    EXPECT_GE(acc, fp32 - 1.5) << v;
    auto out = client_->Infer("mlp", {x}, v);
    ASSERT_TRUE(out.ok()) << v << ": " << out.status();
    before[v] = std::string(out->outputs[0].data, out->outputs[0].byte_size);
  }
  server_->Kill9();
  Start();
  for (const auto& [v, bytes] : before) {
    auto out = client_->Infer("mlp", {x}, v);
    ASSERT_TRUE(out.ok()) << v << " after restart: " << out.status();
    EXPECT_EQ(std::string(out->outputs[0].data, out->outputs[0].byte_size),
              bytes)
        << v;
  }
}

TEST_F(QuantizeE2eTest, PrequantizedModelRegistersAsAVariant) {
  Start();
  RegisterAndCalibrate("fashion", 256, 0);
  v1::QuantizeRequest req;
  req.set_model("fashion");
  auto job = client_->Quantize(req);
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(WaitForJob(*client_, job->id()).state(), v1::JOB_SUCCEEDED);
  // Take the INT8 artifact as if it came from quantization-aware training.
  std::string int8_file;
  const auto files = ListDir(store_ + "/models/fashion");
  ASSERT_TRUE(files.ok());
  for (const auto& f : *files) {
    if (f.rfind("int8-", 0) == 0) int8_file = store_ + "/models/fashion/" + f;
  }
  ASSERT_FALSE(int8_file.empty());
  const std::string int8_bytes = ReadFileOrDie(int8_file);
  ASSERT_TRUE(client_
                  ->Register(Fashion("other"),
                             ReadFileOrDie(FixturePath("fashion_cnn.pt")))
                  .ok());
  RegisterOptions v;
  v.name = "other";
  v.variant = "int8";
  auto info = client_->Register(v, int8_bytes);
  ASSERT_TRUE(info.ok()) << info.status();
  ASSERT_EQ(info->variants_size(), 2);
  HostTensor x = Rows(test_->images, 0, 4);
  x.name = "image";
  auto a = client_->Infer("other", {x}, "int8");
  auto b = client_->Infer("fashion", {x}, "int8");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(std::string(a->outputs[0].data, a->outputs[0].byte_size),
            std::string(b->outputs[0].data, b->outputs[0].byte_size));
  v.variant = "fp32";
  EXPECT_EQ(client_->Register(v, int8_bytes).status().code(),
            absl::StatusCode::kInvalidArgument);
  v.name = "ghost";
  v.variant = "int8";
  EXPECT_EQ(client_->Register(v, int8_bytes).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace twinserve
