// The twinserve demo client: registers the bundled Fashion-MNIST model if
// needed, sends test images over the Open Inference Protocol and prints what
// came back. client/demo.sh starts the server and runs this.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "client/idx.h"
#include "client/report.h"
#include "client/twin_client.h"

ABSL_FLAG(std::string, server, "127.0.0.1:8001", "twinserve address");
ABSL_FLAG(std::string, model, "fashion", "model name to register and query");
ABSL_FLAG(std::string, model_file, "tests/fixtures/fashion_cnn.pt",
          "TorchScript file of the bundled model");
ABSL_FLAG(std::string, labels_file, "tests/fixtures/fashion_mnist_labels.txt",
          "class names, one per line");
ABSL_FLAG(std::string, data_dir, "/usr/share/datasets/fashion-mnist",
          "Fashion-MNIST folder (Debian package dataset-fashion-mnist)");
ABSL_FLAG(int, requests, 2000, "test images to send, one per request");
ABSL_FLAG(int, show, 5, "requests whose top-3 classes are printed");
ABSL_FLAG(int, calibration_samples, 512,
          "training images uploaded as the calibration set");
ABSL_FLAG(std::string, method, "auto",
          "activation calibration method: auto (search), minmax, percentile, "
          "entropy, mse");

namespace twinserve {
namespace {

int Fail(const std::string& what, const absl::Status& st) {
  std::fprintf(stderr, "demo: %s: %s\n", what.c_str(), st.ToString().c_str());
  return 1;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// Test image `i` of `all` (FP32 [N,1,28,28]) as a one-image request input,
// borrowing its bytes.
HostTensor Image(const HostTensor& all, int i) {
  HostTensor img;
  img.name = "image";
  img.dtype = DataType::kFp32;
  img.shape = {1, 1, 28, 28};
  img.data = all.data + i * 28 * 28 * sizeof(float);
  img.byte_size = 28 * 28 * sizeof(float);
  return img;
}

// The first `n` images (a borrowing view) and their labels.
std::pair<HostTensor, std::vector<int64_t>> FirstSamples(
    const HostTensor& images, const HostTensor& labels, int64_t n) {
  HostTensor view = images;
  view.shape[0] = n;
  view.byte_size = n * 784 * sizeof(float);
  std::vector<int64_t> y(n);
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<unsigned char>(labels.data[i]);
  }
  return {view, y};
}

struct VariantRun {
  double accuracy = 0, p50_us = 0, p99_us = 0, rps = 0;
};

// Sends `n` test images one per request to `version` ("" = server's choice)
// and prints the first few answers.
absl::StatusOr<VariantRun> RunVariant(TwinClient& client,
                                      const std::string& model,
                                      const std::string& version,
                                      const HostTensor& all,
                                      const HostTensor& labels, int n,
                                      const std::vector<std::string>& classes) {
  int correct = 0;
  std::vector<double> latencies_us;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    const HostTensor img = Image(all, i);
    auto t0 = std::chrono::steady_clock::now();
    auto out = client.Infer(model, {img}, version, {}, absl::StrCat("req-", i));
    latencies_us.push_back(std::chrono::duration<double, std::micro>(
                               std::chrono::steady_clock::now() - t0)
                               .count());
    if (!out.ok()) return out.status();
    const float* logits = reinterpret_cast<const float*>(out->outputs[0].data);
    std::vector<int> idx(10);
    for (int c = 0; c < 10; ++c) idx[c] = c;
    std::sort(idx.begin(), idx.end(),
              [&](int a, int b) { return logits[a] > logits[b]; });
    const int truth = static_cast<unsigned char>(labels.data[i]);
    correct += idx[0] == truth;
    if (i < absl::GetFlag(FLAGS_show)) {
      std::printf("%s (served by %s): true %-12s top-3:", out->id.c_str(),
                  out->version.c_str(), classes[truth].c_str());
      for (int k = 0; k < 3; ++k) {
        std::printf(" %s(%.2f)", classes[idx[k]].c_str(), logits[idx[k]]);
      }
      std::printf("\n");
    }
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::sort(latencies_us.begin(), latencies_us.end());
  VariantRun run;
  run.accuracy = 100.0 * correct / n;
  run.p50_us = latencies_us[n / 2];
  run.p99_us = latencies_us[std::min(n - 1, n * 99 / 100)];
  run.rps = n / secs;
  std::printf(
      "%d requests: top-1 accuracy %.2f%%, p50 %.0f us, p99 %.0f us, "
      "%.0f req/s (concurrency 1)\n",
      n, run.accuracy, run.p50_us, run.p99_us, run.rps);
  return run;
}

int Main() {
  TwinClient client(absl::GetFlag(FLAGS_server));
  absl::Status st = client.WaitForReady(std::chrono::seconds(60));
  if (!st.ok()) return Fail("server", st);
  const std::string model = absl::GetFlag(FLAGS_model);
  const auto classes = ReadLines(absl::GetFlag(FLAGS_labels_file));

  std::printf("== 1. register the bundled model '%s'\n", model.c_str());
  auto info = client.Get(model);
  if (info.ok()) {
    std::printf("already in the store (generation %llu): kept\n",
                static_cast<unsigned long long>(info->generation()));
  } else {
    std::ifstream in(absl::GetFlag(FLAGS_model_file), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    RegisterOptions options;
    options.name = model;
    options.description =
        "Residual CNN for Fashion-MNIST (tests/fixtures/train_fashion_cnn.py)";
    options.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}};
    options.outputs = {{"logits", DataType::kFp32, {-1, 10}}};
    auto t0 = std::chrono::steady_clock::now();
    info = client.Register(options, ss.str());
    if (!info.ok()) return Fail("register", info.status());
    std::printf(
        "registered in %.0f ms: %llu bytes, variants:",
        std::chrono::duration<double, std::milli>(
            std::chrono::steady_clock::now() - t0)
            .count(),
        static_cast<unsigned long long>(info->variants(0).serialized_bytes()));
    for (const auto& v : info->variants()) {
      std::printf(" %s(%s)", v.name().c_str(),
                  v1::VariantState_Name(v.state()).c_str());
    }
    std::printf("\n");
  }

  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  auto images = ReadIdx(dir + "/t10k-images-idx3-ubyte.gz");
  if (!images.ok()) return Fail("test images", images.status());
  auto labels = ReadIdx(dir + "/t10k-labels-idx1-ubyte.gz");
  if (!labels.ok()) return Fail("test labels", labels.status());
  const HostTensor all = ImagesToFloat(*images);
  const int n = std::min<int64_t>(absl::GetFlag(FLAGS_requests), all.shape[0]);

  std::printf("\n== 2. %d test images over OIP ModelInfer, one per request\n",
              n);
  auto fp32 = RunVariant(client, model, "", all, *labels, n, classes);
  if (!fp32.ok()) return Fail("infer", fp32.status());

  std::printf(
      "\n== 3. upload %d calibration images (training split) and "
      "quantize to INT8 in the server\n",
      absl::GetFlag(FLAGS_calibration_samples));
  auto train = ReadIdx(dir + "/train-images-idx3-ubyte.gz");
  auto train_labels = ReadIdx(dir + "/train-labels-idx1-ubyte.gz");
  if (!train.ok() || !train_labels.ok()) {
    return Fail("training images",
                train.ok() ? train_labels.status() : train.status());
  }
  const HostTensor train_all = ImagesToFloat(*train);
  const auto [calib, calib_labels] = FirstSamples(
      train_all, *train_labels, absl::GetFlag(FLAGS_calibration_samples));
  auto set = client.UploadCalibration(model, "calib", {calib}, calib_labels,
                                      /*replace=*/true);
  if (!set.ok()) return Fail("calibration upload", set.status());
  const auto [eval, eval_labels] = FirstSamples(all, *labels, n);
  auto eset = client.UploadCalibration(model, "eval", {eval}, eval_labels,
                                       /*replace=*/true, 500);
  if (!eset.ok()) return Fail("evaluation upload", eset.status());
  std::printf("stored sets: calib (%lld samples), eval (%lld samples)\n",
              static_cast<long long>(set->samples()),
              static_cast<long long>(eset->samples()));
  v1::QuantizeRequest req;
  req.set_model(model);
  req.set_eval_set("eval");
  req.set_method(absl::GetFlag(FLAGS_method));
  auto job = client.Quantize(req);
  if (!job.ok()) return Fail("quantize", job.status());
  auto end = client.WatchJob(job->id(), [](const v1::Job& j) {
    std::printf("  %s\n", FormatProgress(j).c_str());
  });
  if (!end.ok()) return Fail("watch", end.status());
  if (end->state() != v1::JOB_SUCCEEDED) {
    std::fprintf(stderr, "demo: quantization %s: %s\n",
                 v1::JobState_Name(end->state()).c_str(),
                 end->message().c_str());
    return 1;
  }
  auto report = client.GetReport(model, "int8");
  if (!report.ok()) return Fail("report", report.status());
  std::printf("\n%s", FormatReport(*report, /*brief=*/false).c_str());

  std::printf(
      "\n== 4. the same %d test images through the server, FP32 vs "
      "INT8 side by side\n",
      n);
  auto int8 = RunVariant(client, model, "int8", all, *labels, n, classes);
  if (!int8.ok()) return Fail("infer int8", int8.status());
  std::printf("\n%-26s %12s %12s\n", "via ModelInfer", "fp32", "int8");
  std::printf("%-26s %11.2f%% %11.2f%%\n", "top-1 accuracy", fp32->accuracy,
              int8->accuracy);
  std::printf("%-26s %12.0f %12.0f\n", "p50 latency (us)", fp32->p50_us,
              int8->p50_us);
  std::printf("%-26s %12.0f %12.0f\n", "p99 latency (us)", fp32->p99_us,
              int8->p99_us);
  std::printf("%-26s %12.0f %12.0f\n", "throughput (req/s)", fp32->rps,
              int8->rps);
  std::printf("%-26s %12llu %12llu\n", "serialized bytes",
              static_cast<unsigned long long>(report->fp32_serialized_bytes()),
              static_cast<unsigned long long>(report->int8_serialized_bytes()));

  std::printf(
      "\n== 5. live A/B: INT8 as a shadow of FP32, then a guarded "
      "rollout, compared on the same traffic\n");
  auto stats = [&]() -> absl::StatusOr<v1::ModelStats> {
    grpc::ClientContext ctx;
    v1::GetModelStatsRequest req;
    req.set_model(model);
    v1::ModelStats out;
    grpc::Status st = client.management()->GetModelStats(&ctx, req, &out);
    if (!st.ok()) return absl::InternalError(st.error_message());
    return out;
  };
  auto set_policy = [&](v1::TrafficPolicy p, const std::string& reason) {
    grpc::ClientContext ctx;
    v1::SetTrafficPolicyRequest req;
    req.set_model(model);
    *req.mutable_policy() = std::move(p);
    req.set_author("demo");
    req.set_reason(reason);
    v1::TrafficPolicy out;
    return client.management()->SetTrafficPolicy(&ctx, req, &out);
  };
  v1::TrafficPolicy shadow;
  shadow.set_kind("shadow");
  shadow.set_candidate("int8");
  if (grpc::Status st = set_policy(shadow, "shadow INT8 behind FP32");
      !st.ok()) {
    std::fprintf(stderr, "demo: policy: %s\n", st.error_message().c_str());
    return 1;
  }
  const int live = std::min(n, 1000);
  auto before = stats();
  auto phase = [&](const char* title) -> int {
    int served_int8 = 0;
    for (int i = 0; i < live; ++i) {
      const HostTensor img = Image(all, i);
      auto out = client.Infer(model, {img}, "", {}, "");
      if (!out.ok()) return -1;
      served_int8 += out->version == "int8";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    auto after = stats();
    if (!before.ok() || !after.ok()) return -1;
    std::printf("\n%s: %d requests without a version, %d answered by int8\n%s",
                title, live, served_int8,
                FormatCompare(*after, &*before).c_str());
    before = after;
    return 0;
  };
  if (phase("shadow phase") != 0) return Fail("shadow", absl::UnknownError(""));
  // A guarded rollout: 10% -> 50% -> 100% of traffic to INT8, each stage
  // held for 150 INT8 requests and 1 s while top-1 disagreement, cosine,
  // error rate and p99 ratio stay within limits, else back to FP32.
  v1::TrafficPolicy rollout;
  rollout.set_kind("rollout");
  rollout.set_candidate("int8");
  for (double step : {10.0, 50.0, 100.0}) rollout.add_steps(step);
  rollout.set_min_requests(150);
  rollout.set_min_seconds(1);
  // The measured disagreement is about 1%; a 3% limit judged on at least
  // 200 compared rows keeps sampling noise from tripping the guard.
  rollout.set_max_disagreement(0.03);
  rollout.set_min_samples(200);
  if (grpc::Status st = set_policy(rollout, "guarded rollout of INT8");
      !st.ok()) {
    std::fprintf(stderr, "demo: policy: %s\n", st.error_message().c_str());
    return 1;
  }
  for (int round = 0; round < 6; ++round) {
    if (phase("rollout") != 0) return Fail("rollout", absl::UnknownError(""));
    if (before->policy().kind() == "pinned") break;  // promoted or rolled back
  }

  return 0;
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return twinserve::Main();
}
