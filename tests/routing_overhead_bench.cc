// Cost of routing on the request path, measured side by side end to end:
// two twinserve processes with the same tiny model, one asked for a pinned
// version, one asked with no version (the weighted policy chooses);
// alternating phases at concurrency 1, medians of per-phase p50s. (The
// statistics every request records are the same for both; in process:
// //server/grpc:request_path_benchmark.)
//   bazel run //tests:routing_overhead_bench --
//       --plain=HOST:PORT --routed=HOST:PORT
// Each server must have model "m" (tests/fixtures/linear.pt, input x FP32
// [-1,784], output y FP32 [-1,10]) with variants fp32 and alt; the routed
// one a weighted policy over both.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "client/twin_client.h"

namespace twinserve {
namespace {

int Main(int argc, char** argv) {
  std::string plain, routed;
  int rounds = 7, per_phase = 1000;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--plain=", 8) == 0) plain = argv[i] + 8;
    if (std::strncmp(argv[i], "--routed=", 9) == 0) routed = argv[i] + 9;
  }
  TwinClient a(plain), b(routed);
  HostTensor x = HostTensor::Owned("x", DataType::kFp32, {1, 784},
                                   std::string(784 * 4, '\0'));
  auto phase = [&](TwinClient& c, const std::string& version) {
    std::vector<double> us;
    for (int i = 0; i < per_phase; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      if (!c.Infer("m", {x}, version).ok()) return -1.0;
      us.push_back(std::chrono::duration<double, std::micro>(
                       std::chrono::steady_clock::now() - t0)
                       .count());
    }
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  };
  phase(a, "fp32");
  phase(b, "");
  std::vector<double> pa, pb;
  for (int r = 0; r < rounds; ++r) {
    pa.push_back(phase(a, "fp32"));
    pb.push_back(phase(b, ""));
  }
  std::sort(pa.begin(), pa.end());
  std::sort(pb.begin(), pb.end());
  const double ma = pa[pa.size() / 2], mb = pb[pb.size() / 2];
  std::printf(
      "tiny model p50 at concurrency 1, median of %d rounds x %d: "
      "pinned+metrics off %.1f us, routed+metrics on %.1f us: "
      "%+.1f us\n",
      rounds, per_phase, ma, mb, mb - ma);
  return 0;
}

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) { return twinserve::Main(argc, argv); }
