// Quantization targets on ResNet-18 (torchvision architecture, random
// weights): how long quantizing with 256 calibration samples of 3x224x224
// takes, and the INT8 vs frozen+optimized FP32 latency at batch 1 with one
// intra-op thread, both in the server's own Runner, measured side by side
// (alternating runs, medians).
//   bazel run //quant:quantize_benchmark -- [--runs=30]
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "quant/quantizer.h"
#include "server/core/file_util.h"

namespace twinserve {
namespace {

double Ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now() - t0)
      .count();
}

HostTensor RandomImages(int64_t n, std::mt19937* rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n * 3 * 224 * 224);
  for (float& x : v) x = normal(*rng);
  return HostTensor::Owned(
      "image", DataType::kFp32, {n, 3, 224, 224},
      std::string(reinterpret_cast<char*>(v.data()), v.size() * 4));
}

int Main(int argc, char** argv) {
  int runs = 30;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--runs=", 7) == 0) runs = std::atoi(argv[i] + 7);
  }
  ConfigureTorchThreads(1, 1);
  UseOneDnnQuantizedEngine();
  Signature sig;
  sig.inputs = {{"image", DataType::kFp32, {-1, 3, 224, 224}}};
  sig.outputs = {{"logits", DataType::kFp32, {-1, 1000}}};
  const std::string model = "tests/fixtures/resnet18.pt";
  auto fp32 = Runner::Load(model, sig, {});
  if (!fp32.ok()) {
    std::fprintf(stderr, "%s\n", fp32.status().ToString().c_str());
    return 1;
  }
  std::mt19937 rng(0);
  auto calib = CalibrationSet::ForSignature(sig, "calib");
  auto eval = CalibrationSet::ForSignature(sig, "eval");
  if (!calib->Append({RandomImages(256, &rng)}, {}, {}).ok() ||
      !eval->Append({RandomImages(32, &rng)}, {}, {}).ok()) {
    return 1;
  }
  QuantizeInputs in;
  in.fp32_path = model;
  in.signature = sig;
  in.calibration = &*calib;
  in.evaluation = &*eval;
  in.fp32_runner = fp32->get();
  QuantizeOptions options;
  options.max_calibration_samples = 256;
  options.max_agreement_loss = -1;  // random weights: accuracy is moot
  options.max_accuracy_loss = -1;
  options.latency_runs = 3;
  const std::string out = "/tmp/twinserve_resnet18_int8.pt";
  for (const char* method : {"minmax", "mse"}) {
    options.method = *ParseRangeMethod(method);
    auto t0 = std::chrono::steady_clock::now();
    auto result = QuantizeModel(in, options, out, nullptr, nullptr);
    if (!result.ok()) {
      std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
      return 1;
    }
    std::printf(
        "quantize (%s, 256 samples 3x224x224, 32 eval): %.1f s "
        "(job total incl. evaluation and latency runs); "
        "top-1 agreement %.1f%%, cosine %.4f\n",
        method, Ms(t0) / 1e3, result->report.top1_agreement,
        result->report.cosine_mean);
  }
  RunnerOptions frozen;
  frozen.optimize = false;
  auto int8 = Runner::Load(out, sig, frozen);
  if (!int8.ok()) return 1;
  const auto x = RandomImages(1, &rng);
  std::vector<double> a, b;
  for (int i = 0; i < 3; ++i) {
    (*fp32)->Run({x}, nullptr).IgnoreError();
    (*int8)->Run({x}, nullptr).IgnoreError();
  }
  for (int i = 0; i < runs; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    (*fp32)->Run({x}, nullptr).IgnoreError();
    a.push_back(Ms(t0));
    t0 = std::chrono::steady_clock::now();
    (*int8)->Run({x}, nullptr).IgnoreError();
    b.push_back(Ms(t0));
  }
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  const double fa = a[a.size() / 2], fb = b[b.size() / 2];
  std::printf(
      "ResNet-18 batch 1, 1 thread, Runner, median of %d: FP32 "
      "(frozen+optimized) %.2f ms, INT8 %.2f ms, speedup %.2fx\n",
      runs, fa, fb, fa / fb);
  return 0;
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) { return twinserve::Main(argc, argv); }
