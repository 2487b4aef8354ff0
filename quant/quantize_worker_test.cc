#include "quant/quantize_worker.h"

#include <fstream>
#include <thread>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/common/file_util.h"
#include "server/runtime/runner.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;

constexpr char kWorker[] = "server/twinserve_quantize";

TEST(QuantizeWorkerTest, OptionsAndJobsSurviveJson) {
  QuantizeOptions o;
  o.mode = QuantMode::kDynamic;
  o.search = false;
  o.method = RangeMethod::kPercentile;
  o.percentile = 99.5;
  o.fp32_modules = {"fc", "block1.conv2"};
  o.auto_fallback = true;
  o.max_trials = 3;
  o.latency_runs = 4;
  auto back = QuantizeOptionsFromJson(QuantizeOptionsToJson(o));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(QuantizeOptionsToJson(*back), QuantizeOptionsToJson(o));
  EXPECT_EQ(back->fp32_modules, o.fp32_modules);

  WorkerJob job;
  job.fp32_path = "/s/fp32.pt";
  job.fp32_serialized_bytes = 7;
  job.signature = testing::AddSubSignature();
  job.calibration = {"calib", "/s/calib.bin", "00ff"};
  job.options = o;
  job.output_path = "/s/out.pt";
  job.intra_op_threads = 3;
  job.allow_unsafe_ops = true;
  auto j = WorkerJobFromJson(WorkerJobToJson(job));
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ(WorkerJobToJson(*j), WorkerJobToJson(job));
  EXPECT_EQ(j->signature.inputs.size(), 2u);
  EXPECT_EQ(WorkerJobFromJson("{}").status().code(),
            absl::StatusCode::kInvalidArgument);
}

class WorkerRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::NewTempDir("worker");
    Signature sig;
    sig.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}};
    sig.outputs = {{"logits", DataType::kFp32, {-1, 10}}};
    auto set = CalibrationSet::ForSignature(sig, "calib");
    ASSERT_TRUE(set.ok());
    ASSERT_TRUE(set->Append({testing::RandomImages(64, 1)}, {}, {}).ok());
    job_.fp32_path = testing::FixturePath("fashion_cnn.pt");
    job_.signature = sig;
    const std::string bytes = set->Serialize();
    Sha256 sha;
    sha.Update(bytes);
    job_.calibration = {"calib", dir_ + "/calib.bin", sha.HexDigest()};
    ASSERT_TRUE(WriteFileAtomically(job_.calibration.path, bytes).ok());
    job_.options.search = false;
    job_.options.max_agreement_loss = -1;
    job_.options.max_accuracy_loss = -1;
    job_.options.latency_runs = 3;
    job_.output_path = dir_ + "/int8.pt";
  }

  std::string dir_;
  WorkerJob job_;
};

TEST_F(WorkerRunTest, MakesARunnableArtifactAndReportsProgress) {
  std::vector<std::string> stages;
  auto report = QuantizeInWorker(
      kWorker, job_,
      [&](const QuantizeProgress& p) { stages.push_back(p.stage); }, nullptr);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->calibration_samples + report->eval_samples, 64);
  EXPECT_GT(report->int8_serialized_bytes, 0u);
  EXPECT_FALSE(stages.empty());
  RunnerOptions o;
  o.optimize = false;
  EXPECT_TRUE(Runner::Load(job_.output_path, job_.signature, o).ok());
  // The job file is not left behind.
  EXPECT_FALSE(ReadFile(job_.output_path + ".job.json").ok());
}

TEST_F(WorkerRunTest, CancelKillsTheChild) {
  std::atomic<bool> cancel{false};
  job_.options.latency_runs = 1000;  // long enough to be cut short
  const absl::Time start = absl::Now();
  auto report = QuantizeInWorker(
      kWorker, job_, [&](const QuantizeProgress&) { cancel.store(true); },
      &cancel);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kCancelled)
      << report.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

TEST_F(WorkerRunTest, TheChildsErrorsComeBackWithTheirCode) {
  job_.calibration.path = dir_ + "/missing.bin";
  auto report = QuantizeInWorker(kWorker, job_, nullptr, nullptr);
  EXPECT_EQ(report.status().code(), absl::StatusCode::kNotFound)
      << report.status();
  EXPECT_THAT(report.status().message(), HasSubstr("missing.bin"));

  std::ofstream(dir_ + "/bad.bin") << "not a set";
  job_.calibration.path = dir_ + "/bad.bin";
  EXPECT_EQ(QuantizeInWorker(kWorker, job_, nullptr, nullptr).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST_F(WorkerRunTest, AWorkerThatDiesOrCannotRunIsAnError) {
  auto died = QuantizeInWorker("/bin/true", job_, nullptr, nullptr);
  EXPECT_EQ(died.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(died.status().message(), HasSubstr("without a result"));
  auto missing = QuantizeInWorker(dir_ + "/nope", job_, nullptr, nullptr);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("nope"));
}

}  // namespace
}  // namespace twinserve
