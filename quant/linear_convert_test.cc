#include "quant/linear_convert.h"

#include <ATen/Parallel.h>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu_features.h"
#include "kernels/packed_linear.h"
#include "quant/fashion_test_data.h"
#include "quant/quantizer.h"
#include "server/runtime/linear_ops.h"
#include "server/runtime/tensor_codec.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::testing::HasSubstr;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;

Signature MlpSignature() {
  Signature s;
  s.inputs = {{"x", DataType::kFp32, {-1, 256}}};
  s.outputs = {{"y", DataType::kFp32, {-1, 256}}};
  return s;
}

at::Tensor Inputs(int64_t rows) {
  at::manual_seed(1);
  return at::randn({rows, 256});
}

// A calibration set whose inputs have a few loud channels, as real
// activations do: what activation-aware scaling is for.
CalibrationSet OutlierSet(int64_t rows) {
  at::Tensor x = Inputs(rows);
  x.narrow(1, 0, 8).mul_(20);
  auto set = CalibrationSet::ForSignature(MlpSignature(), "calib");
  EXPECT_TRUE(set->Append({HostTensor::Owned(
                              "x", DataType::kFp32, {rows, 256},
                              std::string(static_cast<char*>(x.data_ptr()),
                                          x.nbytes()))},
                          {}, {})
                  .ok());
  return std::move(*set);
}

at::Tensor Forward(torch::jit::Module& m, const at::Tensor& x) {
  torch::NoGradGuard no_grad;
  return m.forward({x}).toTensor();
}

double RelativeError(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

std::vector<std::string> OpKinds(torch::jit::Module& m) {
  std::vector<std::string> kinds;
  for (torch::jit::Node* n : m.get_method("forward").graph()->nodes()) {
    kinds.push_back(n->kind().toQualString());
  }
  return kinds;
}

TEST(LinearConvertTest, Int8WeightReplacesEveryLinearAndReloads) {
  QuantizeOptions o;
  o.mode = QuantMode::kInt8Weight;
  const std::string out = NewTempDir("w") + "/int8w.pt";
  auto c = ConvertWeightOnly(FixturePath("mlp.pt"), o, {}, out);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->linear_kernels.size(), 2u);
  EXPECT_EQ(c->linear_kernels[0].layer, "fc1");
  EXPECT_EQ(c->linear_kernels[0].out_features, 1024);
  EXPECT_EQ(c->linear_kernels[0].in_features, 256);
  EXPECT_EQ(c->linear_kernels[1].kernel, "twinserve int8-weight");
  EXPECT_EQ(c->kernel_path, KernelPathName(BestKernelPath()));
  // int8 weights + a float scale per channel + FP32 biases.
  EXPECT_LT(c->parameter_bytes, 2 * 256 * 1024 + 4 * 3000);

  // Reloaded from the file like any variant: only twinserve's ops remain.
  torch::jit::Module fp32 = torch::jit::load(FixturePath("mlp.pt"));
  torch::jit::Module q = torch::jit::load(out);
  const auto kinds = OpKinds(q);
  EXPECT_THAT(kinds, ::testing::Contains("twinserve::linear_int8_weight"));
  EXPECT_THAT(kinds, ::testing::Not(::testing::Contains("aten::linear")));
  const at::Tensor x = Inputs(7);
  EXPECT_LT(RelativeError(Forward(q, x), Forward(fp32, x)), 0.01);

  // The GEMV rows and the dequantized GEMM agree (up to the GEMV's 16-bit
  // rounding of the inputs): a request's answer barely depends on what it
  // was batched with.
  const at::Tensor big = Inputs(64);
  const at::Tensor all = Forward(q, big);
  for (int64_t r : {0, 17, 63}) {
    EXPECT_LT(RelativeError(all[r], Forward(q, big.narrow(0, r, 1))[0]), 2e-4)
        << "row " << r;
  }
}

TEST(LinearConvertTest, Int4ActivationAwareBeatsRoundToNearest) {
  const CalibrationSet set = OutlierSet(256);
  const SampleRange calib{&set, 0, set.num_samples()};
  torch::jit::Module fp32 = torch::jit::load(FixturePath("mlp.pt"));
  at::Tensor x = Inputs(128);
  x.narrow(1, 0, 8).mul_(20);
  const at::Tensor want = Forward(fp32, x);

  QuantizeOptions o;
  o.mode = QuantMode::kInt4Weight;
  o.group_size = 128;
  const std::string dir = NewTempDir("w");
  auto awq = ConvertWeightOnly(FixturePath("mlp.pt"), o, calib, dir + "/a.pt");
  ASSERT_TRUE(awq.ok()) << awq.status();
  o.activation_aware = false;
  auto rtn = ConvertWeightOnly(FixturePath("mlp.pt"), o, calib, dir + "/r.pt");
  ASSERT_TRUE(rtn.ok()) << rtn.status();

  const auto& fc1 = awq->linear_kernels[0];
  EXPECT_EQ(fc1.kernel, "twinserve int4-weight g128");
  EXPECT_GT(fc1.awq_alpha, 0) << "the loud channels should pull alpha up";
  EXPECT_LT(fc1.awq_error_ratio, 0.9);
  EXPECT_EQ(rtn->linear_kernels[0].awq_alpha, -1);

  torch::jit::Module a = torch::jit::load(dir + "/a.pt");
  torch::jit::Module r = torch::jit::load(dir + "/r.pt");
  const double ea = RelativeError(Forward(a, x), want);
  const double er = RelativeError(Forward(r, x), want);
  std::printf(
      "int4 g128 relative output error: activation-aware %.4f, "
      "round to nearest %.4f (fc1 alpha %.1f)\n",
      ea, er, fc1.awq_alpha);
  EXPECT_LT(ea, er);
  EXPECT_LT(ea, 0.1);
  // INT4: about an eighth of the FP32 weight bytes.
  EXPECT_LT(awq->parameter_bytes, 4 * 2 * 256 * 1024 / 6);
}

TEST(LinearConvertTest, Fp32ModulesStayAndNonLinearModelsAreRefused) {
  QuantizeOptions o;
  o.mode = QuantMode::kInt4Weight;
  o.fp32_modules = {"fc2"};
  const std::string dir = NewTempDir("w");
  auto c = ConvertWeightOnly(FixturePath("mlp.pt"), o, {}, dir + "/k.pt");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->linear_kernels[1].layer, "fc2");
  EXPECT_EQ(c->linear_kernels[1].kernel, "fp32 (asked)");
  torch::jit::Module q = torch::jit::load(dir + "/k.pt");
  EXPECT_THAT(OpKinds(q), ::testing::Contains("aten::linear"));

  auto none =
      ConvertWeightOnly(FixturePath("add_sub.pt"), o, {}, dir + "/n.pt");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(none.status().message(), HasSubstr("no Linear layer"));
}

TEST(LinearConvertTest, DynamicChoosesAKernelPerLayer) {
  QuantizeOptions o;
  o.mode = QuantMode::kDynamic;
  const std::string out = NewTempDir("w") + "/dyn.pt";
  auto c = ConvertDynamic(FixturePath("mlp.pt"), MlpSignature(), o, out);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->linear_kernels.size(), 2u);
  int ours = 0;
  for (const LinearKernelReport& k : c->linear_kernels) {
    std::printf(
        "%s %lldx%lld: %s (twinserve %.3f ms, libtorch %.3f ms at "
        "batch 1)\n",
        k.layer.c_str(), (long long)k.out_features, (long long)k.in_features,
        k.kernel.c_str(), k.twinserve_ms_b1, k.libtorch_ms_b1);
    EXPECT_GT(k.twinserve_ms_b1, 0);
    EXPECT_GT(k.libtorch_ms_b1, 0);
    EXPECT_THAT(k.kernel, ::testing::AnyOf("twinserve int8-dynamic",
                                           "libtorch int8-dynamic"));
    ours += k.kernel == "twinserve int8-dynamic";
  }
  torch::jit::Module q = torch::jit::load(out);
  const auto kinds = OpKinds(q);
  for (const auto& k : kinds) std::printf("  node %s\n", k.c_str());
  EXPECT_EQ(
      std::count(kinds.begin(), kinds.end(), "twinserve::linear_int8_dynamic"),
      ours);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "aten::linear"), 0);
  torch::jit::Module fp32 = torch::jit::load(FixturePath("mlp.pt"));
  const at::Tensor x = Inputs(5);
  EXPECT_LT(RelativeError(Forward(q, x), Forward(fp32, x)), 0.03);
}

// --intra_op_threads splits output channels: every channel is computed as
// with one thread, so the bits do not change.
TEST(LinearConvertTest, ThreadsSplitChannelsWithoutChangingResults) {
  at::manual_seed(2);
  const at::Tensor w = at::randn({1000, 300});
  const PackedLinear t = ToTensors(PackInt8(w.data_ptr<float>(), 1000, 300));
  const at::Tensor x = at::randn({3, 300});
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = RunPacked(t, x, 300, 0);
  at::set_num_threads(2);
  const at::Tensor two = RunPacked(t, x, 300, 0);
  at::set_num_threads(before);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(LinearConvertTest, OpsRefuseBadArguments) {
  const at::Tensor q = at::zeros({4, 32}, at::kChar);
  const at::Tensor scale = at::ones({4});
  EXPECT_THROW(
      LinearInt8WeightOp(at::ones({2, 16}), q, scale, c10::nullopt, 32, 0),
      c10::Error);  // last dim is not in_features
  EXPECT_THROW(LinearInt8WeightOp(at::ones({2, 32}, at::kDouble), q, scale,
                                  c10::nullopt, 32, 0),
               c10::Error);  // not float32
  EXPECT_THROW(LinearInt8WeightOp(at::ones({2, 32}), q, at::ones({3}),
                                  c10::nullopt, 32, 0),
               c10::Error);  // scale per channel
  EXPECT_THROW(
      LinearInt4WeightOp(at::ones({2, 32}), at::zeros({4, 16}, at::kByte),
                         at::ones({4}), at::ones({4}), c10::nullopt,
                         c10::nullopt, 32, 48, 0),
      c10::Error);  // group size
  // Leading dimensions are kept.
  const at::Tensor y =
      LinearInt8WeightOp(at::ones({3, 2, 32}), q, scale, c10::nullopt, 32, 0);
  EXPECT_EQ(y.sizes(), (std::vector<int64_t>{3, 2, 4}));
}

// The accuracy bar: a Fashion-MNIST MLP on the 10,000 test images,
// evaluated independently of the FP32 model by the job's own evaluator.
TEST(LinearConvertTest, FashionMlpAccuracy) {
  UseOneDnnQuantizedEngine();
  const Signature sig = ::twinserve::testing::FashionSignature();
  auto fp32 = Runner::Load(FixturePath("fashion_mlp.pt"), sig, {});
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  const CalibrationSet calib =
      ::twinserve::testing::LoadFashion("train", 0, 512, "calib");
  const CalibrationSet eval =
      ::twinserve::testing::LoadFashion("t10k", 0, 10000, "eval");
  QuantizeInputs in;
  in.fp32_path = FixturePath("fashion_mlp.pt");
  in.signature = sig;
  in.calibration = &calib;
  in.evaluation = &eval;
  in.fp32_runner = fp32->get();
  for (auto [mode, allowed] : {std::pair{QuantMode::kInt8Weight, 0.1},
                               std::pair{QuantMode::kInt4Weight, 1.0}}) {
    QuantizeOptions o;
    o.mode = mode;
    o.latency_runs = 3;
    o.max_accuracy_loss = allowed;
    auto r = QuantizeModel(in, o, NewTempDir("w") + "/m.pt", nullptr, nullptr);
    ASSERT_TRUE(r.ok()) << r.status();
    const QuantizationReport& rep = r->report;
    std::printf(
        "%s: fp32 %.2f%%, %s %.2f%% (%+.2f pt), agreement %.2f%%, "
        "params %llu -> %llu bytes, b1 %.3f -> %.3f ms\n",
        QuantModeName(mode), rep.fp32_accuracy, QuantModeName(mode),
        rep.int8_accuracy, rep.int8_accuracy - rep.fp32_accuracy,
        rep.top1_agreement, (unsigned long long)rep.fp32_parameter_bytes,
        (unsigned long long)rep.int8_parameter_bytes, rep.fp32_latency_ms_b1,
        rep.int8_latency_ms_b1);
    EXPECT_EQ(rep.mode, QuantModeName(mode));
    EXPECT_EQ(rep.eval_samples, 10000);
    EXPECT_GT(rep.fp32_accuracy, 85.0);
    EXPECT_LE(rep.fp32_accuracy - rep.int8_accuracy, allowed);
    EXPECT_EQ(rep.linear_kernels.size(), 3u);
    EXPECT_FALSE(rep.kernel_path.empty());
  }
}

}  // namespace
}  // namespace twinserve
