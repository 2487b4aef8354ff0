// Quantization targets on ResNet-18 (torchvision architecture, random
// weights): how long quantizing with 256 calibration samples of 3x224x224
// takes, and the INT8 vs frozen+optimized FP32 latency at batch 1 with one
// intra-op thread, both in the server's own Runner, measured side by side
// (alternating runs, medians).
// Then the Linear-only MLP 1024-4096-1024 in every mode that suits it
// (dynamic, bf16, int8-weight, int4-weight) against the same frozen FP32,
// batch 1 and 64.
//   bazel run //quant:quantize_benchmark -- [--runs=30] [--mlp_only]
//       [--threads=1] (intra-op threads, as the server's --intra_op_threads)
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "quant/quantizer.h"
#include "server/common/file_util.h"

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

int ResNet(int runs, std::mt19937* rng);
int Mlp(int runs, std::mt19937* rng);

int Main(int argc, char** argv) {
  int runs = 30;
  bool mlp_only = false;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--runs=", 7) == 0) runs = std::atoi(argv[i] + 7);
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    }
    if (std::strcmp(argv[i], "--mlp_only") == 0) mlp_only = true;
  }
  ConfigureTorchThreads(threads, 1);
  UseOneDnnQuantizedEngine();
  std::mt19937 rng(0);
  if (!mlp_only && ResNet(runs, &rng) != 0) return 1;
  return Mlp(runs, &rng);
}

int ResNet(int runs, std::mt19937* rng_ptr) {
  std::mt19937& rng = *rng_ptr;
  Signature sig;
  sig.inputs = {{"image", DataType::kFp32, {-1, 3, 224, 224}}};
  sig.outputs = {{"logits", DataType::kFp32, {-1, 1000}}};
  const std::string model = "tests/fixtures/resnet18.pt";
  auto fp32 = Runner::Load(model, sig, {});
  if (!fp32.ok()) {
    std::fprintf(stderr, "%s\n", fp32.status().ToString().c_str());
    return 1;
  }
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
  // "auto" is the default: the recipe search (every activation method on
  // one calibration, equalization, bias correction).
  for (const char* method : {"auto", "minmax"}) {
    options.search = std::string(method) == "auto";
    if (!options.search) options.method = *ParseRangeMethod(method);
    auto t0 = std::chrono::steady_clock::now();
    auto result = QuantizeModel(in, options, out, nullptr, nullptr);
    if (!result.ok()) {
      std::fprintf(stderr, "%s\n", result.status().ToString().c_str());
      return 1;
    }
    std::printf(
        "quantize (%s, 256 samples 3x224x224, 32 eval): %.1f s "
        "(job total incl. evaluation and latency runs); "
        "top-1 agreement %.1f%%, cosine %.4f, chose %s%s\n",
        method, Ms(t0) / 1e3, result->report.top1_agreement,
        result->report.cosine_mean, result->report.method.c_str(),
        result->report.equalized ? " equalized" : "");
    for (const CandidateReport& c : result->report.candidates) {
      std::printf("  candidate %-40s agreement %6.2f%% b1 %.2f ms%s\n",
                  c.recipe.c_str(), c.top1_agreement, c.latency_ms_b1,
                  c.chosen ? " (chosen)" : "");
    }
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

int Mlp(int runs, std::mt19937* rng_ptr) {
  std::mt19937& rng = *rng_ptr;
  // Linear-only MLP 1024-4096-1024: dynamic INT8 and BF16 against the
  // frozen+optimized FP32, batch 1 and 64.
  Signature mlp_sig;
  mlp_sig.inputs = {{"x", DataType::kFp32, {-1, 1024}}};
  mlp_sig.outputs = {{"y", DataType::kFp32, {-1, 1024}}};
  const std::string mlp = "tests/fixtures/mlp_large.pt";
  auto mlp32 = Runner::Load(mlp, mlp_sig, {});
  if (!mlp32.ok()) {
    std::fprintf(stderr, "%s\n", mlp32.status().ToString().c_str());
    return 1;
  }
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto vectors = [&](int64_t n) {
    std::vector<float> v(n * 1024);
    for (float& f : v) f = normal(rng);
    return HostTensor::Owned(
        "x", DataType::kFp32, {n, 1024},
        std::string(reinterpret_cast<char*>(v.data()), v.size() * 4));
  };
  auto mset = CalibrationSet::ForSignature(mlp_sig, "calib");
  if (absl::Status st = mset->Append({vectors(64)}, {}, {}); !st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  QuantizeInputs min;
  min.fp32_path = mlp;
  min.signature = mlp_sig;
  min.calibration = &*mset;
  min.fp32_runner = mlp32->get();
  for (QuantMode mode : {QuantMode::kInt8Weight, QuantMode::kInt4Weight,
                         QuantMode::kDynamic, QuantMode::kBf16}) {
    QuantizeOptions mo;
    mo.mode = mode;
    mo.max_agreement_loss = -1;
    mo.max_accuracy_loss = -1;
    mo.latency_runs = 3;
    const std::string path =
        std::string("/tmp/twinserve_mlp_") + QuantModeName(mode) + ".pt";
    auto r = QuantizeModel(min, mo, path, nullptr, nullptr);
    if (!r.ok()) {
      std::printf("MLP %s: %s\n", QuantModeName(mode),
                  r.status().ToString().c_str());
      continue;
    }
    for (const LinearKernelReport& k : r->report.linear_kernels) {
      std::printf("  layer %s %lldx%lld: %s", k.layer.c_str(),
                  static_cast<long long>(k.out_features),
                  static_cast<long long>(k.in_features), k.kernel.c_str());
      std::printf(", GEMM from %lld rows",
                  static_cast<long long>(k.gemm_from_rows));
      if (k.twinserve_ms_b1 >= 0) {
        std::printf(" (batch 1: twinserve %.3f ms, libtorch %.3f ms)",
                    k.twinserve_ms_b1, k.libtorch_ms_b1);
      }
      std::printf("\n");
    }
    for (int64_t batch : {1, 64}) {
      const auto xb = vectors(batch);
      std::vector<double> p, q;
      for (int i = 0; i < 3; ++i) {
        (*mlp32)->Run({xb}, nullptr).IgnoreError();
        r->runner->Run({xb}, nullptr).IgnoreError();
      }
      for (int i = 0; i < runs; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        (*mlp32)->Run({xb}, nullptr).IgnoreError();
        p.push_back(Ms(t0));
        t0 = std::chrono::steady_clock::now();
        r->runner->Run({xb}, nullptr).IgnoreError();
        q.push_back(Ms(t0));
      }
      std::sort(p.begin(), p.end());
      std::sort(q.begin(), q.end());
      std::printf(
          "MLP 1024-4096-1024 %s batch %lld: FP32 %.3f ms, %s %.3f ms, "
          "speedup %.2fx; cosine %.5f; parameter bytes %llu -> %llu\n",
          QuantModeName(mode), static_cast<long long>(batch), p[p.size() / 2],
          QuantModeName(mode), q[q.size() / 2],
          p[p.size() / 2] / q[q.size() / 2], r->report.cosine_mean,
          static_cast<unsigned long long>(r->report.fp32_parameter_bytes),
          static_cast<unsigned long long>(r->report.int8_parameter_bytes));
    }
  }
  return 0;
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) { return twinserve::Main(argc, argv); }
