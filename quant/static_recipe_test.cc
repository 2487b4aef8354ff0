// The static recipe on models that defeat plain per-tensor calibration:
// fashion_cnn_outlier.pt (the bundled CNN with two channels per block 200x
// wider, FP32 outputs unchanged) and the bundled CNN itself.
#include <cstdio>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "quant/fashion_test_data.h"
#include "quant/quantizer.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::twinserve::testing::FashionSignature;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::LoadFashion;
using ::twinserve::testing::NewTempDir;

void Print(const char* what, const QuantizationReport& r) {
  std::printf(
      "%s: method %s%s, fp32 %.2f%% int8 %.2f%% (drop %.2f), agreement "
      "%.2f%%, b1 %.3f -> %.3f ms (%.2fx), %d trials, %.1f s\n",
      what, r.method.c_str(), r.equalized ? " equalized" : "", r.fp32_accuracy,
      r.int8_accuracy, r.fp32_accuracy - r.int8_accuracy, r.top1_agreement,
      r.fp32_latency_ms_b1, r.int8_latency_ms_b1,
      r.int8_latency_ms_b1 / r.fp32_latency_ms_b1, r.trials,
      r.duration_seconds);
  for (const CandidateReport& c : r.candidates) {
    std::printf(
        "  candidate %-40s agreement %6.2f%% accuracy %6.2f%% b1 %.3f "
        "ms%s%s\n",
        c.recipe.c_str(), c.top1_agreement, c.accuracy, c.latency_ms_b1,
        c.criterion_met ? " meets" : "", c.chosen ? " CHOSEN" : "");
  }
  for (const std::string& l : r.rescaling) std::printf("  %s\n", l.c_str());
  for (const LayerSensitivity& s : r.sensitivity) {
    std::printf("  sensitivity %-16s spread %8.1fx", s.layer.c_str(),
                s.input_channel_spread);
    if (s.agreement_quantized_alone >= 0) {
      std::printf(" agreement quantized alone %.2f%%",
                  s.agreement_quantized_alone);
    }
    std::printf("\n");
  }
  for (const std::string& l : r.fallback_log) std::printf("  %s\n", l.c_str());
}

class StaticRecipeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    UseOneDnnQuantizedEngine();
    for (const char* m :
         {"fashion_cnn.pt", "fashion_cnn_outlier.pt", "fashion_mobilenet.pt"}) {
      auto r = Runner::Load(FixturePath(m), FashionSignature(), {});
      ASSERT_TRUE(r.ok()) << r.status();
      runners_[m] = r->release();
    }
    calib_ = new CalibrationSet(LoadFashion("train", 0, 512, "calib"));
    test_ = new CalibrationSet(LoadFashion("t10k", 0, 10000, "test"));
    raw_calib_ =
        new CalibrationSet(LoadFashion("train", 0, 512, "calib", /*raw=*/true));
    raw_test_ =
        new CalibrationSet(LoadFashion("t10k", 0, 10000, "test", /*raw=*/true));
  }
  QuantizeInputs Inputs(const std::string& model,
                        const CalibrationSet* eval = test_) {
    QuantizeInputs in;
    in.fp32_path = FixturePath(model);
    in.signature = FashionSignature();
    in.calibration = calib_;
    in.evaluation = eval;
    in.fp32_runner = runners_[model];
    return in;
  }
  static std::map<std::string, Runner*> runners_;
  static CalibrationSet* calib_;
  static CalibrationSet* test_;
  static CalibrationSet* raw_calib_;
  static CalibrationSet* raw_test_;
};
std::map<std::string, Runner*> StaticRecipeTest::runners_;
CalibrationSet* StaticRecipeTest::calib_ = nullptr;
CalibrationSet* StaticRecipeTest::test_ = nullptr;
CalibrationSet* StaticRecipeTest::raw_calib_ = nullptr;
CalibrationSet* StaticRecipeTest::raw_test_ = nullptr;

TEST_F(StaticRecipeTest, OutlierChannelsDefeatPlainMinMax) {
  QuantizeOptions o;
  o.search = false;
  o.equalize = false;
  o.bias_correction = false;
  o.method = RangeMethod::kMinMax;
  o.max_accuracy_loss = -1;
  o.max_agreement_loss = -1;
  o.latency_runs = 5;
  auto r = QuantizeModel(Inputs("fashion_cnn_outlier.pt"), o,
                         NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  Print("outlier, plain minmax", r->report);
  // The fixture does what it is for: plain per-tensor ranges collapse.
  EXPECT_GT(r->report.fp32_accuracy - r->report.int8_accuracy, 10.0);
}

TEST_F(StaticRecipeTest, OutlierModelDefaultRecipeWithFallback) {
  QuantizeOptions o;  // method auto, equalization, bias correction
  o.auto_fallback = true;
  o.max_accuracy_loss = 0.3;
  auto r = QuantizeModel(Inputs("fashion_cnn_outlier.pt"), o,
                         NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  Print("outlier, default + fallback", r->report);
  const QuantizationReport& q = r->report;
  EXPECT_LE(q.fp32_accuracy - q.int8_accuracy, 0.3);
  EXPECT_EQ(q.eval_samples, 10000);
  EXPECT_TRUE(q.searched);
  EXPECT_TRUE(q.equalized);
  EXPECT_GT(q.bias_corrected_layers, 0);
  EXPECT_GE(q.candidates.size(), 4u);
  int chosen = 0;
  for (const CandidateReport& c : q.candidates) chosen += c.chosen;
  EXPECT_EQ(chosen, 1);
  EXPECT_FALSE(q.sensitivity.empty());
  EXPECT_FALSE(q.rescaling.empty());
}

TEST_F(StaticRecipeTest, FallbackRanksLayersByTheirEffectOnTheOutput) {
  // Without equalization or search, only the fallback can fix the model:
  // its ranking must find the layers on either side of the outlier
  // channels (block*.conv1 makes them, block*.conv2 reads them), which
  // their own SQNR calls healthy.
  QuantizeOptions o;
  o.search = false;
  o.equalize = false;
  o.method = RangeMethod::kMinMax;
  o.auto_fallback = true;
  o.max_accuracy_loss = 0.3;
  o.latency_runs = 5;
  auto r = QuantizeModel(Inputs("fashion_cnn_outlier.pt"), o,
                         NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  const QuantizationReport& q = r->report;
  Print("outlier, minmax without equalization, fallback", q);
  EXPECT_LE(q.fp32_accuracy - q.int8_accuracy, 0.3);
  ASSERT_FALSE(q.fp32_modules.empty());
  for (const std::string& m : q.fp32_modules) {
    EXPECT_THAT(m, ::testing::MatchesRegex("block[123]\\.conv[12]"))
        << "returned a layer the outliers do not touch";
  }
  int ranked = 0;
  for (const LayerSensitivity& s : q.sensitivity) {
    ranked += s.agreement_quantized_alone >= 0;
  }
  EXPECT_GE(ranked, 9);
}

TEST_F(StaticRecipeTest, SearchOverItsTimeBudget) {
  // The budget runs out after the first candidate: the best found so far.
  QuantizeOptions o;
  o.time_limit_seconds = 1e-3;
  o.latency_runs = 3;
  auto r = QuantizeModel(Inputs("fashion_cnn.pt"), o,
                         NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->report.candidates.size(), 1u);
  EXPECT_THAT(r->report.fallback_log,
              Contains(HasSubstr("recipe search stopped at the time limit")));
  // ... and when that one misses the criterion, the job fails naming it.
  o.equalize = false;
  o.max_accuracy_loss = 0.3;
  auto outlier = QuantizeModel(Inputs("fashion_cnn_outlier.pt"), o,
                               NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_FALSE(outlier.ok());
  EXPECT_EQ(outlier.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(outlier.status().message(), HasSubstr("accuracy criterion"));
  EXPECT_THAT(outlier.status().message(), HasSubstr("allowed loss 0.30"));
}

TEST_F(StaticRecipeTest, UnpairableLayersAreSkippedAndSaid) {
  // The residual blocks' inputs feed both a convolution and the skip
  // connection: those pairs cannot be rescaled and the report says why.
  QuantizeOptions o;
  o.search = false;
  o.latency_runs = 3;
  auto r = QuantizeModel(Inputs("fashion_cnn.pt"), o,
                         NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->report.rescaling,
              Contains(HasSubstr("skipped: stem -> block1.conv1: the "
                                 "activation feeds other ops too")));
  EXPECT_THAT(r->report.rescaling,
              Contains(HasSubstr("block1.conv1 -> block1.conv2 (relu)")));
}

TEST_F(StaticRecipeTest, BundledModelKeepsItsAccuracy) {
  QuantizeOptions o;
  auto r = QuantizeModel(Inputs("fashion_cnn.pt"), o,
                         NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  Print("bundled, default", r->report);
  EXPECT_LE(r->report.fp32_accuracy - r->report.int8_accuracy, 0.1);
}

TEST_F(StaticRecipeTest, DepthwiseModelOnRawPixels) {
  // MobileNetV2-style blocks (1x1 expand, 3x3 depthwise, 1x1 project,
  // ReLU6) on unnormalised 0-255 pixels.
  QuantizeInputs in = Inputs("fashion_mobilenet.pt", raw_test_);
  in.calibration = raw_calib_;
  QuantizeOptions plain;
  plain.search = false;
  plain.equalize = false;
  plain.bias_correction = false;
  plain.max_accuracy_loss = -1;
  plain.max_agreement_loss = -1;
  plain.latency_runs = 5;
  auto p =
      QuantizeModel(in, plain, NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(p.ok()) << p.status();
  Print("mobilenet raw pixels, plain minmax", p->report);

  QuantizeOptions o;  // the default recipe
  o.max_accuracy_loss = 0.3;
  auto r = QuantizeModel(in, o, NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  Print("mobilenet raw pixels, default", r->report);
  EXPECT_LE(r->report.fp32_accuracy - r->report.int8_accuracy, 0.3);
  EXPECT_GT(r->report.fp32_accuracy, 90.0);
}

}  // namespace
}  // namespace twinserve
