// Helpers shared by the C++ tests: fixture paths, temp folders, and a real
// twinserve process on a loopback port.
#ifndef TWINSERVE_TESTS_TEST_UTIL_H_
#define TWINSERVE_TESTS_TEST_UTIL_H_

#include <sys/types.h>

#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "client/twin_client.h"
#include "server/common/signature.h"

namespace twinserve {
namespace testing {

// Path of a file in tests/fixtures (generated or committed), from runfiles.
std::string FixturePath(const std::string& name);
// A fresh, empty folder under the test's temp dir.
std::string NewTempDir(const std::string& prefix);
std::string ReadFileOrDie(const std::string& path);

// An FP32 tensor of uniform random values in [lo, hi).
HostTensor RandomFloats(const std::string& name, Shape shape, std::mt19937* rng,
                        float lo = -1, float hi = 1);

// Fashion-MNIST from the Debian package (dataset-fashion-mnist): images as
// FP32 [N,1,28,28] in [0,1] named "image", and their labels.
struct FashionSplit {
  HostTensor images;
  std::vector<int64_t> labels;
};
// "train" (60,000) or "t10k" (10,000); aborts if the package is missing.
FashionSplit LoadFashionSplit(const std::string& prefix);
// Rows [begin, begin + count) of `t` (dim 0), a view into its bytes.
HostTensor RowsOf(const HostTensor& t, int64_t begin, int64_t count);
// Registration of tests/fixtures/fashion_cnn.pt: image FP32 [-1,1,28,28] ->
// logits FP32 [-1,10].
RegisterOptions FashionOptions(const std::string& name);

// The signature of tests/fixtures/add_sub.pt: inputs a, b and outputs sum,
// diff, all FP32 [-1, 4].
Signature AddSubSignature();
// Registration of tests/fixtures/add_sub.pt (AddSubSignature).
RegisterOptions AddSubOptions(const std::string& name);
// Registers add_sub.pt as model "m" and again as its variant "alt": two
// variants with identical answers, for routing tests.
absl::Status RegisterAddSubWithAlt(TwinClient& client);
// `n` random images shaped for the Fashion CNN ("image" [n,1,28,28]).
HostTensor RandomImages(int64_t n, int seed);
// Quantizes `model` from its set "calib" with min/max ranges and no
// accuracy criterion, and waits: OK only if the job SUCCEEDED (else the
// job's state and message).
absl::Status QuantizeAndWait(TwinClient& client, const std::string& model);

// GET http://host:port/metrics over a plain socket; the body, or "" if the
// connection fails.
std::string Scrape(const std::string& address);
// Value of the first series in Prometheus text `text` whose line starts
// with `prefix`; -1 if absent.
double MetricValue(const std::string& text, const std::string& prefix);

// Runs bazel-bin/server/twinserve as a child process.
class ServerProcess {
 public:
  // Starts on 127.0.0.1 with an ephemeral port, the given store and extra
  // flags, and waits until it listens and (unless `wait_until_ready` is
  // false) until it is ready; aborts the test binary if not.
  ServerProcess(const std::string& store, std::vector<std::string> flags = {},
                bool wait_until_ready = true);
  // SIGTERM and wait, unless already stopped.
  ~ServerProcess();

  const std::string& address() const { return address_; }
  // host:port of /metrics; empty when the server runs with --metrics=false.
  const std::string& metrics_address() const { return metrics_address_; }
  // kill -9, as a crash would.
  void Kill9();
  // SIGTERM; returns the exit status.
  int Stop();
  // Waits for the process to exit (after a signal the test sent itself);
  // returns the exit status.
  int Wait();
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::string metrics_address_;
  std::string log_path_;
};

}  // namespace testing
}  // namespace twinserve

#endif  // TWINSERVE_TESTS_TEST_UTIL_H_
