// ServerCore owns the serving core and the order in which its parts start
// and stop. The gRPC services are thin layers over it.
//
// Start: open the store; the registry loads every stored model (writes
// answer UNAVAILABLE until then); the rollout driver starts.
// Stop (Shutdown, or the destructor): the rollout driver stops; running jobs
// are stopped and joined (recorded INTERRUPTED) while everything they use
// still exists; then the engine drains its comparison runs, the registry
// releases its servables (each scheduler draining onto the worker pool),
// and the worker pool finishes last.
#ifndef TWINSERVE_SERVER_CORE_SERVER_CORE_H_
#define TWINSERVE_SERVER_CORE_SERVER_CORE_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "quant/calibration_set.h"
#include "server/cluster/etcd_client.h"
#include "server/cluster/fleet.h"
#include "server/common/memory_budget.h"
#include "server/core/fleet_jobs.h"
#include "server/core/fleet_rollouts.h"
#include "server/core/jobs.h"
#include "server/core/quantization.h"
#include "server/core/registrar.h"
#include "server/core/registry.h"
#include "server/core/rollout_driver.h"
#include "server/core/traffic_control.h"
#include "server/runtime/runner.h"
#include "server/serving/engine.h"
#include "server/serving/scheduler.h"
#include "server/store/metadata_store.h"
#include "server/store/model_store.h"

namespace twinserve {

// Several servers sharing one state (server/cluster).
struct ClusterOptions {
  // etcd's client endpoints, HOST:PORT[,HOST:PORT...]; empty: one server,
  // records in store_path.
  std::string etcd;
  // TLS to etcd (PEM paths; see EtcdOptions): empty ca: plain text.
  std::string etcd_ca;
  std::string etcd_cert;
  std::string etcd_key;
  // Keys live under it; several fleets may share one etcd.
  std::string prefix = "/twinserve/";
  // The artifact folder every server of the fleet sees (a ReadWriteMany
  // volume); required with `etcd`.
  std::string blobs;
  // Unreferenced blobs older than this are collected.
  absl::Duration blob_grace = absl::Hours(1);
  // Unique in the fleet (the pod name on Kubernetes); empty: host name and
  // a random suffix.
  std::string replica_id;
  // A dead replica's leadership, statistics and job claims vanish after
  // this long.
  absl::Duration lease_ttl = absl::Seconds(5);
};

struct ServerOptions {
  // Folder of the durable model store; created if missing. In a cluster it
  // keeps this server's own files (staging, job records, audit log).
  std::string store_path;
  ClusterOptions cluster;
  RunnerOptions runner;
  SchedulerOptions scheduler;
  EngineOptions engine;
  // Largest model file a registration may upload.
  uint64_t max_model_bytes = uint64_t{4} << 30;
  CalibrationLimits calibration;
  ResourceLimits limits;
  // Samples all calibration uploads in progress may hold in memory
  // together (each set is also bounded by calibration.max_bytes).
  uint64_t max_calibration_memory_bytes = uint64_t{4} << 30;
  int max_concurrent_jobs = 2;
  // Where quantization jobs run: a child process (`twinserve_quantize`),
  // so what LibTorch's passes leave behind goes with it, or, without a
  // binary, this process.
  QuantizeWorkerOptions quantize_worker;
  // How often the rollout driver judges rollouts; 0: never (tests).
  int rollout_tick_ms = 250;
};

class ServerCore {
 public:
  // Opens the store. Models are loaded by LoadStoredModels(), so a caller
  // can start answering liveness first.
  static absl::StatusOr<std::unique_ptr<ServerCore>> Create(
      const ServerOptions& options);
  ~ServerCore();

  // Loads every stored model, then marks the server ready.
  void LoadStoredModels();
  bool ready() const { return ready_.load(); }

  // Stops jobs and the rollout driver (see the file comment); requests
  // still in flight finish. Idempotent; the destructor calls it.
  void Shutdown();

  const ServerOptions& options() const { return options_; }
  ModelStore* store() { return store_.get(); }
  ModelRegistry* registry() { return registry_.get(); }
  Registrar* registrar() { return registrar_.get(); }
  MemoryBudget* calibration_budget() { return &calibration_budget_; }
  TrafficControl* traffic() { return traffic_.get(); }
  InferenceEngine* engine() { return engine_.get(); }
  JobManager* jobs() { return jobs_.get(); }
  QuantizationService* quantization() { return quantization_.get(); }
  RolloutDriver* rollout() { return rollout_.get(); }
  // Null unless the server runs as one replica of a fleet.
  Fleet* fleet() { return fleet_.get(); }

 private:
  explicit ServerCore(const ServerOptions& options)
      : options_(options),
        calibration_budget_(options.max_calibration_memory_bytes,
                            "calibration uploads",
                            "--max_calibration_memory_bytes") {}

  const ServerOptions options_;
  MemoryBudget calibration_budget_;
  // Declared in the order they are built; the destructor takes them down
  // in reverse, except the fleet, which goes right after the jobs (its
  // watch calls into the registrar).
  std::unique_ptr<EtcdClient> etcd_;
  std::unique_ptr<MetadataStore> metadata_;
  std::unique_ptr<Fleet> fleet_;
  std::unique_ptr<FleetJobs> fleet_jobs_;
  std::unique_ptr<FleetRollouts> fleet_rollouts_;
  std::unique_ptr<ModelStore> store_;
  std::unique_ptr<SchedulerFactory> schedulers_;
  std::unique_ptr<ModelRegistry> registry_;
  std::unique_ptr<Registrar> registrar_;
  std::unique_ptr<TrafficControl> traffic_;
  std::unique_ptr<InferenceEngine> engine_;
  std::unique_ptr<JobManager> jobs_;
  std::unique_ptr<QuantizationService> quantization_;
  std::unique_ptr<RolloutDriver> rollout_;
  std::atomic<bool> ready_{false};
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_SERVER_CORE_H_
