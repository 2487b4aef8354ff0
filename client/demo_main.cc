// The twinserve demo client: registers the bundled Fashion-MNIST model if
// needed, sends test images over the Open Inference Protocol and prints what
// came back. client/demo.sh starts the server and runs this.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "client/idx.h"
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
  int correct = 0;
  std::vector<double> latencies_us;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    HostTensor img;
    img.name = "image";
    img.dtype = DataType::kFp32;
    img.shape = {1, 1, 28, 28};
    img.data = all.data + i * 28 * 28 * sizeof(float);
    img.byte_size = 28 * 28 * sizeof(float);
    auto t0 = std::chrono::steady_clock::now();
    auto out = client.Infer(model, {img}, "", {}, absl::StrCat("req-", i));
    latencies_us.push_back(std::chrono::duration<double, std::micro>(
                               std::chrono::steady_clock::now() - t0)
                               .count());
    if (!out.ok()) return Fail("infer", out.status());
    const float* logits = reinterpret_cast<const float*>(out->outputs[0].data);
    std::vector<int> idx(10);
    for (int c = 0; c < 10; ++c) idx[c] = c;
    std::sort(idx.begin(), idx.end(),
              [&](int a, int b) { return logits[a] > logits[b]; });
    const int truth = static_cast<unsigned char>(labels->data[i]);
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
  std::printf(
      "\n%d requests: top-1 accuracy %.2f%%, p50 %.0f us, p99 %.0f us, "
      "%.0f req/s (concurrency 1)\n",
      n, 100.0 * correct / n, latencies_us[n / 2],
      latencies_us[std::min(n - 1, n * 99 / 100)], n / secs);
  return 0;
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return twinserve::Main();
}
