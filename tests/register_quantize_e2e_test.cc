// End to end: quantization at registration, in one RegisterModel call
// (samples in the same stream, a job, a traffic plan applied when the
// variant is published), on the real twinserve binary, with kill -9.
#include <thread>

#include "client/twin_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::FashionOptions;
using ::twinserve::testing::FashionSplit;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::LoadFashionSplit;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::RowsOf;
using ::twinserve::testing::ServerProcess;

class RegisterQuantizeE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    train_ = new FashionSplit(LoadFashionSplit("train"));
    test_ = new FashionSplit(LoadFashionSplit("t10k"));
  }
  void SetUp() override { store_ = NewTempDir("store"); }
  void Start() {
    server_ = std::make_unique<ServerProcess>(store_);
    client_ = std::make_unique<TwinClient>(server_->address());
  }
  // Registration of the bundled CNN with `calib` training images and
  // `eval` test images in the stream, quantized, with a rollout plan.
  RegisterOptions OneCall(const std::string& name, int64_t calib,
                          int64_t eval) {
    RegisterOptions o = FashionOptions(name);
    HostTensor c = RowsOf(train_->images, 0, calib);
    c.name = "image";
    o.calibration = {c};
    o.calibration_labels.assign(train_->labels.begin(),
                                train_->labels.begin() + calib);
    if (eval > 0) {
      HostTensor e = RowsOf(test_->images, 0, eval);
      e.name = "image";
      o.evaluation = {e};
      o.evaluation_labels.assign(test_->labels.begin(),
                                 test_->labels.begin() + eval);
    }
    v1::QuantizeRequest q;
    q.set_method("minmax");  // the fastest job: these tests are about flow
    o.quantize = q;
    v1::TrafficPolicy plan;
    plan.set_kind("rollout");
    plan.add_steps(50);
    plan.add_steps(100);
    plan.set_min_requests(1000000);  // stays at stage 1 while we look
    o.plan = plan;
    return o;
  }
  std::string Model() { return ReadFileOrDie(FixturePath("fashion_cnn.pt")); }

  static FashionSplit* train_;
  static FashionSplit* test_;
  std::string store_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<TwinClient> client_;
};
FashionSplit* RegisterQuantizeE2eTest::train_ = nullptr;
FashionSplit* RegisterQuantizeE2eTest::test_ = nullptr;

TEST_F(RegisterQuantizeE2eTest, OneCallRegistersQuantizesAndAppliesThePlan) {
  Start();
  RegisterOptions o = OneCall("fashion", 256, 1000);
  o.wait_for_variant = true;
  auto resp = client_->RegisterModel(o, Model());
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_TRUE(resp->has_job());
  EXPECT_EQ(resp->job().state(), v1::JOB_SUCCEEDED) << resp->job().message();
  ASSERT_EQ(resp->model().variants_size(), 2);
  EXPECT_EQ(resp->model().variants(1).name(), "int8");
  EXPECT_EQ(resp->model().variants(1).state(), v1::READY);
  auto sets = client_->ListCalibrationSets("fashion");
  ASSERT_TRUE(sets.ok());
  EXPECT_EQ(sets->size(), 2u);  // calib and eval, stored
  auto report = client_->GetReport("fashion", "int8");
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->eval_samples(), 1000);

  // The plan took effect with the variant, and the history says so.
  auto policy = client_->GetPolicy("fashion");
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->kind(), "rollout");
  EXPECT_EQ(policy->candidate(), "int8");
  EXPECT_EQ(policy->baseline(), "fp32");
  auto history = client_->PolicyHistory("fashion");
  ASSERT_TRUE(history.ok());
  ASSERT_FALSE(history->empty());
  EXPECT_EQ(history->back().action(), "plan");
  EXPECT_THAT(history->back().reason(), HasSubstr("int8 is ready"));

  // Durable: kill -9 and restart, everything is as acknowledged.
  server_->Kill9();
  Start();
  auto info = client_->Get("fashion");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->variants_size(), 2);
  EXPECT_EQ(info->variants(1).state(), v1::READY);
  policy = client_->GetPolicy("fashion");
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->kind(), "rollout");
  EXPECT_EQ(policy->candidate(), "int8");
}

TEST_F(RegisterQuantizeE2eTest, AnswersWhenFp32IsReadyAndServesMeanwhile) {
  Start();
  auto resp = client_->RegisterModel(OneCall("fashion", 256, 2000), Model());
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_TRUE(resp->has_job());
  EXPECT_FALSE(resp->job().id().empty());
  // FP32 serves at once; the plan waits for int8.
  HostTensor one = RowsOf(test_->images, 0, 1);
  one.name = "image";
  auto out = client_->Infer("fashion", {one});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->version, "fp32");
  auto job = client_->WatchJob(resp->job().id(), nullptr);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::JOB_SUCCEEDED) << job->message();
  auto policy = client_->GetPolicy("fashion");
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->kind(), "rollout");
}

TEST_F(RegisterQuantizeE2eTest, AnOperatorsChangeMeanwhileWinsOverThePlan) {
  Start();
  auto resp = client_->RegisterModel(OneCall("fashion", 256, 2000), Model());
  ASSERT_TRUE(resp.ok()) << resp.status();
  // The operator pins FP32 while the job runs: the plan must not undo it.
  v1::SetTrafficPolicyRequest pin;
  pin.set_model("fashion");
  pin.mutable_policy()->set_kind("pinned");
  pin.mutable_policy()->set_baseline("fp32");
  pin.set_author("ops");
  pin.set_reason("hold on fp32");
  auto set = client_->SetPolicy(pin);
  ASSERT_TRUE(set.ok()) << set.status();
  auto job = client_->WatchJob(resp->job().id(), nullptr);
  ASSERT_TRUE(job.ok());
  ASSERT_EQ(job->state(), v1::JOB_SUCCEEDED) << job->message();
  auto policy = client_->GetPolicy("fashion");
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ(policy->kind(), "pinned");
  EXPECT_EQ(policy->author(), "ops");
  auto history = client_->PolicyHistory("fashion");
  ASSERT_TRUE(history.ok());
  for (const auto& c : *history) EXPECT_NE(c.action(), "plan");
}

TEST_F(RegisterQuantizeE2eTest, BadRequestsAreRefusedWholeAndStoreNothing) {
  Start();
  // Calibration samples shaped for another model.
  RegisterOptions o = OneCall("fashion", 64, 0);
  o.calibration[0].shape = {16, 1, 14, 56};
  auto r = client_->RegisterModel(o, Model());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("calib samples"));
  EXPECT_EQ(client_->Get("fashion").status().code(),
            absl::StatusCode::kNotFound);

  // Labels that do not match the samples.
  o = OneCall("fashion", 64, 0);
  o.calibration_labels.resize(10);
  r = client_->RegisterModel(o, Model());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
      << r.status();
  EXPECT_EQ(client_->Get("fashion").status().code(),
            absl::StatusCode::kNotFound);

  // A plan for a variant the registration will not make.
  o = OneCall("fashion", 64, 0);
  o.plan->set_candidate("int4");
  r = client_->RegisterModel(o, Model());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("traffic plan"));
  EXPECT_EQ(client_->Get("fashion").status().code(),
            absl::StatusCode::kNotFound);

  // Quantize without samples; samples without quantize; bad options.
  o = OneCall("fashion", 64, 0);
  o.calibration.clear();
  o.calibration_labels.clear();
  r = client_->RegisterModel(o, Model());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("calibration samples"));
  o = OneCall("fashion", 64, 0);
  o.quantize.reset();
  o.plan.reset();
  r = client_->RegisterModel(o, Model());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  o = OneCall("fashion", 64, 0);
  o.quantize->set_method("magic");
  r = client_->RegisterModel(o, Model());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->Get("fashion").status().code(),
            absl::StatusCode::kNotFound);
  auto sets = client_->ListCalibrationSets("fashion");
  EXPECT_FALSE(sets.ok());
}

TEST_F(RegisterQuantizeE2eTest, KillNineMidJobNeverAppliesThePlan) {
  Start();
  RegisterOptions o = OneCall("fashion", 512, 10000);
  o.quantize->set_method("auto");
  auto resp = client_->RegisterModel(o, Model());
  ASSERT_TRUE(resp.ok()) << resp.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  server_->Kill9();
  Start();
  auto job = client_->GetJob(resp->job().id());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_INTERRUPTED);
  // What was acknowledged survived: the model and its sets.
  auto info = client_->Get("fashion");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(info->variants_size(), 1);
  EXPECT_EQ(info->state(), v1::READY);
  EXPECT_EQ(client_->ListCalibrationSets("fashion")->size(), 2u);
  // The plan was not applied to a variant that does not exist, and a later
  // int8 made by hand does not pick it up.
  auto policy = client_->GetPolicy("fashion");
  ASSERT_TRUE(policy.ok());
  EXPECT_NE(policy->kind(), "rollout");
  v1::QuantizeRequest req;
  req.set_model("fashion");
  req.set_method("minmax");
  auto again = client_->Quantize(req);
  ASSERT_TRUE(again.ok()) << again.status();
  auto done = client_->WatchJob(again->id(), nullptr);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->state(), v1::JOB_SUCCEEDED) << done->message();
  policy = client_->GetPolicy("fashion");
  ASSERT_TRUE(policy.ok());
  EXPECT_NE(policy->kind(), "rollout");
}

}  // namespace
}  // namespace twinserve
