// ServerCore owns the serving core (store, registry, inference engine) and
// the server's readiness. The gRPC services are thin layers over it.
#ifndef TWINSERVE_SERVER_CORE_SERVER_CORE_H_
#define TWINSERVE_SERVER_CORE_SERVER_CORE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/inference.h"
#include "server/core/jobs.h"
#include "server/core/metrics.h"
#include "server/core/quantization.h"
#include "server/core/registry.h"
#include "server/core/rollout.h"
#include "server/core/store.h"

namespace twinserve {

struct ServerOptions {
  // Folder of the durable model store; created if missing.
  std::string store_path;
  RunnerOptions runner;
  EngineOptions engine;
  // Largest model file a registration may upload.
  uint64_t max_model_bytes = uint64_t{4} << 30;
  CalibrationLimits calibration;
  // Per-request metric updates on the inference path.
  bool record_metrics = true;
};

class ServerCore {
 public:
  // Opens the store. Models are loaded by LoadStoredModels(), so a caller can
  // start answering liveness first.
  static absl::StatusOr<std::unique_ptr<ServerCore>> Create(
      const ServerOptions& options);

  // Loads every stored model, then marks the server ready.
  void LoadStoredModels();
  bool ready() const { return ready_.load(); }

  const ServerOptions& options() const { return options_; }
  ModelStore* store() { return store_.get(); }
  ModelRegistry* registry() { return registry_.get(); }
  InferenceEngine* engine() { return engine_.get(); }
  QuantizationService* quantization() { return quantization_.get(); }
  Metrics* metrics() { return metrics_.get(); }

 private:
  explicit ServerCore(const ServerOptions& options) : options_(options) {}

  const ServerOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<InferenceEngine> engine_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<QuantizationService> quantization_;
  // Last: stopped first, before what it reads goes away.
  std::unique_ptr<RolloutController> rollout_;
  std::atomic<bool> ready_{false};
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_SERVER_CORE_H_
