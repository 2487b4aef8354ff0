// Shadow overhead on the primary's latency, measured side by side on a
// running twinserve: the bundled model's FP32 answers at concurrency 1 under
// a pinned policy and under a shadow policy running INT8 on 100% of
// requests, alternating phases; medians of per-phase p50s.
//   bazel run //tests:shadow_overhead_bench -- --server=127.0.0.1:8001
// (the model "fashion" with an "int8" variant must exist: run the demo.)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "client/idx.h"
#include "client/twin_client.h"

namespace twinserve {
namespace {

int Main(int argc, char** argv) {
  std::string server = "127.0.0.1:8001";
  int rounds = 5, per_phase = 400;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--server=", 9) == 0) server = argv[i] + 9;
    if (std::strncmp(argv[i], "--rounds=", 9) == 0)
      rounds = std::atoi(argv[i] + 9);
  }
  TwinClient client(server);
  auto images =
      ReadIdx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  if (!images.ok()) return 1;
  const HostTensor all = ImagesToFloat(*images);
  auto set_policy = [&](const char* kind) {
    grpc::ClientContext ctx;
    v1::SetTrafficPolicyRequest req;
    req.set_model("fashion");
    req.mutable_policy()->set_kind(kind);
    if (std::string(kind) == "shadow")
      req.mutable_policy()->set_candidate("int8");
    v1::TrafficPolicy out;
    return client.management()->SetTrafficPolicy(&ctx, req, &out).ok();
  };
  auto phase = [&]() {
    std::vector<double> us;
    for (int i = 0; i < per_phase; ++i) {
      HostTensor img;
      img.name = "image";
      img.dtype = DataType::kFp32;
      img.shape = {1, 1, 28, 28};
      img.data = all.data + (i % 10000) * 784 * sizeof(float);
      img.byte_size = 784 * sizeof(float);
      const auto t0 = std::chrono::steady_clock::now();
      if (!client.Infer("fashion", {img}).ok()) return -1.0;
      us.push_back(std::chrono::duration<double, std::micro>(
                       std::chrono::steady_clock::now() - t0)
                       .count());
    }
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  };
  std::vector<double> pinned, shadow;
  for (int r = 0; r < rounds; ++r) {
    if (!set_policy("pinned")) return 1;
    pinned.push_back(phase());
    if (!set_policy("shadow")) return 1;
    shadow.push_back(phase());
  }
  set_policy("pinned");
  std::sort(pinned.begin(), pinned.end());
  std::sort(shadow.begin(), shadow.end());
  const double a = pinned[pinned.size() / 2], b = shadow[shadow.size() / 2];
  std::printf(
      "FP32 p50 at concurrency 1, median of %d rounds x %d requests: "
      "pinned %.0f us, shadow INT8 100%% %.0f us: %+.1f%%\n",
      rounds, per_phase, a, b, 100 * (b - a) / a);
  return 0;
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) { return twinserve::Main(argc, argv); }
