// Soak (loopback, bounded): clients infer without pause while an operator
// registers, calibrates, quantizes, rolls out, rolls back and unregisters
// models. Zero unexpected errors, no crash, thread count flat, and the
// server's resident memory within 10% of what it was after warm-up,
// quantization jobs included (they run in twinserve_quantize, so what
// LibTorch's passes leave behind goes with the child). $SOAK_SECONDS
// (default 60; 600 on demand:
//   bazel test //tests:soak_test --test_env=SOAK_SECONDS=600
//   --test_timeout=900 --test_output=all).

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/twin_client.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

using ::twinserve::testing::FashionOptions;
using ::twinserve::testing::FixturePath;
using ::twinserve::testing::NewTempDir;
using ::twinserve::testing::QuantizeAndWait;
using ::twinserve::testing::RandomImages;
using ::twinserve::testing::ReadFileOrDie;
using ::twinserve::testing::ServerProcess;

struct ProcessUse {
  int64_t rss_kb = 0;
  int threads = 0;
};

ProcessUse Use(pid_t pid) {
  ProcessUse u;
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") status >> u.rss_kb;
    if (key == "Threads:") status >> u.threads;
  }
  return u;
}

class Errors {
 public:
  void Add(const std::string& what, const absl::Status& st) {
    if (st.ok()) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (++counts_[what + ": " + std::string(st.message()).substr(0, 120)] ==
        1) {
      std::fprintf(stderr, "unexpected: %s: %s\n", what.c_str(),
                   st.ToString().c_str());
    }
    ++total_;
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> counts_;
  int total_ = 0;
};

// One operator cycle: a model comes, is calibrated and quantized, its INT8
// rolled out and rolled back, and goes; the long-lived model gets a new
// INT8 (replacing the old) shadowed then pinned back.
void OperatorCycle(TwinClient& client, int cycle, Errors* errors) {
  const std::string name = absl::StrCat("tmp", cycle % 3);
  errors->Add("register",
              client
                  .Register(FashionOptions(name),
                            ReadFileOrDie(FixturePath("fashion_cnn.pt")))
                  .status());
  errors->Add("calibrate",
              client
                  .UploadCalibration(name, "calib", {RandomImages(32, cycle)},
                                     {}, false)
                  .status());
  errors->Add("quantize", QuantizeAndWait(client, name));
  v1::SetTrafficPolicyRequest rollout;
  rollout.set_model(name);
  rollout.mutable_policy()->set_kind("rollout");
  rollout.mutable_policy()->set_candidate("int8");
  rollout.mutable_policy()->add_steps(10);
  rollout.mutable_policy()->add_steps(100);
  errors->Add("rollout", client.SetPolicy(rollout).status());
  for (int i = 0; i < 20; ++i) {
    errors->Add("infer " + name,
                client.Infer(name, {RandomImages(1, i)}).status());
  }
  v1::RollbackRequest rb;
  rb.set_model(name);
  rb.set_reason("soak");
  errors->Add("rollback", client.Rollback(rb).status());
  errors->Add("unregister", client.Unregister(name));

  errors->Add("quantize base", QuantizeAndWait(client, "base"));
  v1::SetTrafficPolicyRequest shadow;
  shadow.set_model("base");
  shadow.mutable_policy()->set_kind("shadow");
  shadow.mutable_policy()->set_baseline("fp32");
  shadow.mutable_policy()->set_candidate("int8");
  errors->Add("shadow", client.SetPolicy(shadow).status());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  errors->Add("rollback base", client
                                   .Rollback([] {
                                     v1::RollbackRequest r;
                                     r.set_model("base");
                                     return r;
                                   }())
                                   .status());
}

TEST(SoakTest, InferenceWhileOperatorsWork) {
  const char* env = std::getenv("SOAK_SECONDS");
  const int seconds = env != nullptr ? std::atoi(env) : 60;
  ServerProcess server(NewTempDir("store"));
  TwinClient admin(server.address());
  ASSERT_TRUE(admin
                  .Register(FashionOptions("base"),
                            ReadFileOrDie(FixturePath("fashion_cnn.pt")))
                  .ok());
  ASSERT_TRUE(
      admin.UploadCalibration("base", "calib", {RandomImages(32, 7)}, {}, false)
          .ok());
  Errors errors;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> answered{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c) {
    clients.emplace_back([&, c] {
      TwinClient client(server.address());
      const HostTensor one = RandomImages(1 + c, c);
      while (!stop.load()) {
        errors.Add("infer base", client.Infer("base", {one}).status());
        answered.fetch_add(1);
      }
    });
  }
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::seconds(seconds);
  ProcessUse warm;
  int cycles = 0;
  while (std::chrono::steady_clock::now() < deadline || cycles < 4) {
    OperatorCycle(admin, cycles, &errors);
    ++cycles;
    if (cycles == 2) warm = Use(server.pid());  // after warm-up
  }
  const ProcessUse end = Use(server.pid());
  stop = true;
  for (auto& t : clients) t.join();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::printf(
      "soak: %.0f s, %d operator cycles, %lld inferences (%.0f/s); resident "
      "%lld kB after warm-up, %lld kB at the end (%+.1f%%); threads %d -> "
      "%d; unexpected errors %d\n",
      secs, cycles, static_cast<long long>(answered.load()),
      answered.load() / secs, static_cast<long long>(warm.rss_kb),
      static_cast<long long>(end.rss_kb),
      100.0 * (end.rss_kb - warm.rss_kb) / warm.rss_kb, warm.threads,
      end.threads, errors.total());
  EXPECT_EQ(errors.total(), 0);
  EXPECT_TRUE(server.running());
  // 10% above the warm-up level, quantization jobs included. (In the
  // server's own process each job left 6.6 MB here; in the worker ~0.6 MB.)
  const int jobs_since_warm = 2 * (cycles - 2);
  const double per_job_kb =
      jobs_since_warm > 0
          ? static_cast<double>(end.rss_kb - warm.rss_kb) / jobs_since_warm
          : 0;
  std::printf("soak: %.0f kB per quantization job since warm-up\n", per_job_kb);
  EXPECT_LE(end.rss_kb, warm.rss_kb * 11 / 10)
      << "resident memory grew more than 10% after warm-up";
  EXPECT_LE(end.threads, warm.threads + 2) << "threads grew";
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace twinserve
