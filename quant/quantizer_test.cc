#include "quant/quantizer.h"

#include <cmath>
#include <cstdio>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "quant/fashion_test_data.h"
#include "server/common/file_util.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;

Signature Fashion() { return ::twinserve::testing::FashionSignature(); }

CalibrationSet Load(const std::string& split, int64_t offset, int64_t count,
                    const std::string& name) {
  return ::twinserve::testing::LoadFashion(split, offset, count, name);
}

class QuantizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    UseOneDnnQuantizedEngine();
    auto r = Runner::Load(FixturePath("fashion_cnn.pt"), Fashion(), {});
    ASSERT_TRUE(r.ok());
    fp32_ = r->release();
  }
  QuantizeInputs Inputs(const CalibrationSet* calib,
                        const CalibrationSet* eval) {
    QuantizeInputs in;
    in.fp32_path = FixturePath("fashion_cnn.pt");
    in.signature = Fashion();
    in.calibration = calib;
    in.evaluation = eval;
    in.fp32_runner = fp32_;
    return in;
  }
  static Runner* fp32_;
};
Runner* QuantizerTest::fp32_ = nullptr;

TEST_F(QuantizerTest, FashionMnistStaticInt8KeepsAccuracy) {
  const CalibrationSet calib = Load("train", 0, 512, "calib");
  const CalibrationSet eval = Load("t10k", 0, 10000, "eval");
  const std::string out = NewTempDir("q") + "/int8.pt";
  QuantizeOptions options;  // default method (minmax), per-channel weights
  std::vector<std::string> stages;
  auto result = QuantizeModel(
      Inputs(&calib, &eval), options, out,
      [&](const QuantizeProgress& p) {
        if (stages.empty() || stages.back() != p.stage)
          stages.push_back(p.stage);
      },
      nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  const QuantizationReport& r = result->report;
  std::printf(
      "%s: fp32 %.2f%% int8 %.2f%% agreement %.2f%% cosine %.4f "
      "size %llu -> %llu, b1 %.3f -> %.3f ms, b32 %.2f -> %.2f ms, "
      "%.1f s\n",
      r.method.c_str(), r.fp32_accuracy, r.int8_accuracy, r.top1_agreement,
      r.cosine_mean, (unsigned long long)r.fp32_parameter_bytes,
      (unsigned long long)r.int8_parameter_bytes, r.fp32_latency_ms_b1,
      r.int8_latency_ms_b1, r.fp32_latency_ms_b32, r.int8_latency_ms_b32,
      r.duration_seconds);
  for (const auto& l : r.layers) {
    std::printf("  %-32s %6.1f dB\n", l.name.c_str(), l.sqnr_db);
  }
  EXPECT_EQ(r.eval_samples, 10000);
  EXPECT_EQ(r.calibration_samples, 512);
  EXPECT_GT(r.fp32_accuracy, 90.0);
  EXPECT_LE(r.fp32_accuracy - r.int8_accuracy, 0.3);
  EXPECT_GT(r.top1_agreement, 98.0);
  EXPECT_LT(r.int8_parameter_bytes, r.fp32_parameter_bytes / 2);
  EXPECT_FALSE(r.layers.empty());
  EXPECT_THAT(stages, ::testing::Contains("converting"));
  auto parsed = QuantizationReport::FromJson(r.ToJson());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->int8_accuracy, r.int8_accuracy);
}

TEST_F(QuantizerTest, EveryMethodProducesAWorkingModel) {
  const CalibrationSet calib = Load("train", 0, 256, "calib");
  const CalibrationSet eval = Load("t10k", 0, 1000, "eval");
  for (RangeMethod m : {RangeMethod::kMinMax, RangeMethod::kPercentile,
                        RangeMethod::kEntropy, RangeMethod::kMse}) {
    QuantizeOptions options;
    options.search = false;
    options.method = m;
    options.latency_runs = 3;
    auto result = QuantizeModel(Inputs(&calib, &eval), options,
                                NewTempDir("q") + "/int8.pt", nullptr, nullptr);
    ASSERT_TRUE(result.ok()) << RangeMethodName(m) << ": " << result.status();
    std::printf("%s: int8 %.2f%% vs fp32 %.2f%%\n", RangeMethodName(m),
                result->report.int8_accuracy, result->report.fp32_accuracy);
    EXPECT_GT(result->report.top1_agreement, 95.0) << RangeMethodName(m);
  }
}

TEST_F(QuantizerTest, HeldOutSliceAndExclusions) {
  const CalibrationSet calib = Load("train", 0, 200, "calib");
  QuantizeOptions options;
  options.fp32_modules = {"fc"};
  options.latency_runs = 3;
  auto result = QuantizeModel(Inputs(&calib, nullptr), options,
                              NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->report.eval_samples, 40);
  EXPECT_EQ(result->report.calibration_samples, 160);
  EXPECT_THAT(result->report.fp32_modules, ::testing::ElementsAre("fc"));
}

TEST_F(QuantizerTest, AutoFallbackReturnsLayersToFp32UntilTheCriterionHolds) {
  // One calibration sample makes ranges too narrow on purpose.
  const CalibrationSet calib = Load("train", 0, 1, "calib");
  const CalibrationSet eval = Load("t10k", 0, 500, "eval");
  QuantizeOptions options;
  options.search = false;
  options.method = RangeMethod::kMinMax;
  options.max_agreement_loss = 0.5;
  options.latency_runs = 3;
  auto strict = QuantizeModel(Inputs(&calib, &eval), options,
                              NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  if (strict.ok()) GTEST_SKIP() << "one sample was enough here";
  EXPECT_EQ(strict.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(strict.status().message(), HasSubstr("accuracy criterion"));
  options.auto_fallback = true;
  options.max_trials = 20;
  auto result = QuantizeModel(Inputs(&calib, &eval), options,
                              NewTempDir("q") + "/int8.pt", nullptr, nullptr);
  if (result.ok()) {
    EXPECT_GT(result->report.trials, 1);
    EXPECT_FALSE(result->report.fp32_modules.empty());
    EXPECT_FALSE(result->report.fallback_log.empty());
  } else {
    EXPECT_THAT(result.status().message(), HasSubstr("trial"));
  }
}

TEST_F(QuantizerTest, DynamicInt8ForALinearModel) {
  Signature s;
  s.inputs = {{"x", DataType::kFp32, {-1, 256}}};
  s.outputs = {{"y", DataType::kFp32, {-1, 256}}};
  auto fp32 = Runner::Load(FixturePath("mlp.pt"), s, {});
  ASSERT_TRUE(fp32.ok());
  auto set = CalibrationSet::ForSignature(s, "calib");
  std::vector<float> v(64 * 256);
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.37 * i);
  ASSERT_TRUE(set->Append({HostTensor::Owned(
                              "x", DataType::kFp32, {64, 256},
                              std::string(reinterpret_cast<char*>(v.data()),
                                          v.size() * 4))},
                          {}, {})
                  .ok());
  QuantizeInputs in;
  in.fp32_path = FixturePath("mlp.pt");
  in.signature = s;
  in.calibration = &*set;
  in.fp32_runner = fp32->get();
  QuantizeOptions options;
  options.mode = QuantMode::kDynamic;
  options.latency_runs = 3;
  options.max_agreement_loss = -1;
  auto r =
      QuantizeModel(in, options, NewTempDir("q") + "/dyn.pt", nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  std::printf("dynamic: cosine %.5f, params %llu -> %llu, b1 %.3f -> %.3f ms\n",
              r->report.cosine_mean,
              (unsigned long long)r->report.fp32_parameter_bytes,
              (unsigned long long)r->report.int8_parameter_bytes,
              r->report.fp32_latency_ms_b1, r->report.int8_latency_ms_b1);
  EXPECT_EQ(r->report.mode, "dynamic");
  EXPECT_GT(r->report.cosine_mean, 0.99);
  EXPECT_LT(r->report.int8_parameter_bytes, r->report.fp32_parameter_bytes / 3);
  // No Linear layer: nothing for dynamic quantization to do.
  Signature as;
  as.inputs = {{"a", DataType::kFp32, {-1, 4}},
               {"b", DataType::kFp32, {-1, 4}}};
  as.outputs = {{"sum", DataType::kFp32, {-1, 4}},
                {"diff", DataType::kFp32, {-1, 4}}};
  auto add_sub = Runner::Load(FixturePath("add_sub.pt"), as, {});
  ASSERT_TRUE(add_sub.ok());
  auto aset = CalibrationSet::ForSignature(as, "c");
  HostTensor a =
      HostTensor::Owned("a", DataType::kFp32, {2, 4}, std::string(32, '\0'));
  HostTensor b = a;
  b.name = "b";
  ASSERT_TRUE(aset->Append({a, b}, {}, {}).ok());
  QuantizeInputs ain;
  ain.fp32_path = FixturePath("add_sub.pt");
  ain.signature = as;
  ain.calibration = &*aset;
  ain.fp32_runner = add_sub->get();
  auto none =
      QuantizeModel(ain, options, NewTempDir("q") + "/x.pt", nullptr, nullptr);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("no Linear"));
}

TEST_F(QuantizerTest, HalfPrecisionVariants) {
  const CalibrationSet calib = Load("train", 0, 64, "calib");
  const CalibrationSet eval = Load("t10k", 0, 1000, "eval");
  {
    // LibTorch 1.13 has no Half kernels for conv2d/addmm on CPU.
    QuantizeOptions options;
    options.mode = QuantMode::kFp16;
    auto r = QuantizeModel(Inputs(&calib, &eval), options,
                           NewTempDir("q") + "/half.pt", nullptr, nullptr);
    EXPECT_FALSE(r.ok());
    std::printf("fp16: %s\n", r.status().ToString().c_str());
  }
  for (QuantMode mode : {QuantMode::kBf16}) {
    QuantizeOptions options;
    options.mode = mode;
    options.latency_runs = 3;
    auto r = QuantizeModel(Inputs(&calib, &eval), options,
                           NewTempDir("q") + "/half.pt", nullptr, nullptr);
    ASSERT_TRUE(r.ok()) << QuantModeName(mode) << ": " << r.status();
    std::printf(
        "%s: accuracy %.2f%% vs fp32 %.2f%%, params %llu -> %llu, "
        "b1 %.3f -> %.3f ms, b32 %.2f -> %.2f ms\n",
        QuantModeName(mode), r->report.int8_accuracy, r->report.fp32_accuracy,
        (unsigned long long)r->report.fp32_parameter_bytes,
        (unsigned long long)r->report.int8_parameter_bytes,
        r->report.fp32_latency_ms_b1, r->report.int8_latency_ms_b1,
        r->report.fp32_latency_ms_b32, r->report.int8_latency_ms_b32);
    EXPECT_GT(r->report.top1_agreement, 98.0);
    EXPECT_NEAR(r->report.int8_parameter_bytes * 2.0,
                r->report.fp32_parameter_bytes, 64.0);
  }
}

TEST_F(QuantizerTest, BadInputs) {
  auto empty = CalibrationSet::ForSignature(Fashion(), "empty");
  auto r = QuantizeModel(Inputs(&*empty, nullptr), {},
                         NewTempDir("q") + "/x.pt", nullptr, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);

  const CalibrationSet calib = Load("train", 0, 64, "calib");
  std::atomic<bool> cancel{true};
  r = QuantizeModel(Inputs(&calib, nullptr), {}, NewTempDir("q") + "/x.pt",
                    nullptr, &cancel);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);

  // A model with no quantizable op.
  Signature s;
  s.inputs = {{"a", DataType::kFp32, {-1, 4}}, {"b", DataType::kFp32, {-1, 4}}};
  s.outputs = {{"sum", DataType::kFp32, {-1, 4}},
               {"diff", DataType::kFp32, {-1, 4}}};
  auto runner = Runner::Load(FixturePath("add_sub.pt"), s, {});
  auto set = CalibrationSet::ForSignature(s, "c");
  HostTensor a =
      HostTensor::Owned("a", DataType::kFp32, {2, 4}, std::string(32, '\0'));
  HostTensor b = a;
  b.name = "b";
  ASSERT_TRUE(set->Append({a, b}, {}, {}).ok());
  QuantizeInputs in;
  in.fp32_path = FixturePath("add_sub.pt");
  in.signature = s;
  in.calibration = &*set;
  in.fp32_runner = runner->get();
  r = QuantizeModel(in, {}, NewTempDir("q") + "/x.pt", nullptr, nullptr);
  EXPECT_FALSE(r.ok());
  std::printf("add_sub: %s\n", r.status().ToString().c_str());
}

}  // namespace
}  // namespace twinserve
