#include "server/core/server_core.h"

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/cluster/etcd_metadata_store.h"
#include "server/common/file_util.h"
#include "server/common/status_macros.h"

namespace twinserve {

absl::StatusOr<std::unique_ptr<ServerCore>> ServerCore::Create(
    const ServerOptions& options) {
  std::unique_ptr<ServerCore> core(new ServerCore(options));
  if (options.cluster.etcd.empty()) {
    TS_ASSIGN_OR_RETURN(core->store_, ModelStore::Open(options.store_path));
  } else {
    if (options.cluster.blobs.empty()) {
      return absl::InvalidArgumentError(
          "--cluster_etcd needs --cluster_blobs: the artifact folder every "
          "replica shares");
    }
    if (options.cluster.prefix.empty() || options.cluster.prefix[0] != '/' ||
        options.cluster.prefix.back() != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("--cluster_prefix must start and end with '/', not '",
                       options.cluster.prefix, "'"));
    }
    EtcdOptions etcd;
    etcd.endpoints = options.cluster.etcd;
    etcd.ca_file = options.cluster.etcd_ca;
    etcd.cert_file = options.cluster.etcd_cert;
    etcd.key_file = options.cluster.etcd_key;
    TS_ASSIGN_OR_RETURN(core->etcd_, EtcdClient::Create(etcd));
    core->metadata_ = std::make_unique<EtcdMetadataStore>(
        core->etcd_.get(), options.cluster.prefix);
    TS_ASSIGN_OR_RETURN(
        core->store_,
        ModelStore::OpenShared(options.store_path, core->metadata_.get(),
                               options.cluster.blobs));
    FleetOptions fleet;
    fleet.replica_id = options.cluster.replica_id;
    if (fleet.replica_id.empty()) {
      char host[256] = {0};
      gethostname(host, sizeof(host) - 1);
      fleet.replica_id = absl::StrCat(host, "-", RandomToken().substr(0, 6));
    }
    fleet.lease_ttl = options.cluster.lease_ttl;
    core->fleet_ = std::make_unique<Fleet>(core->etcd_.get(),
                                           options.cluster.prefix, fleet);
    core->fleet_rollouts_ = std::make_unique<FleetRollouts>(core->fleet_.get());
  }
  core->schedulers_ = std::make_unique<SchedulerFactory>(options.scheduler);
  core->registry_ = std::make_unique<ModelRegistry>(
      core->store_.get(), core->schedulers_.get(), options.runner);
  core->registrar_ = std::make_unique<Registrar>(
      core->store_.get(), core->registry_.get(), options.limits);
  core->traffic_ = std::make_unique<TrafficControl>(core->store_.get(),
                                                    core->registry_.get());
  core->engine_ =
      std::make_unique<InferenceEngine>(core->registry_.get(), options.engine);
  if (core->fleet_ != nullptr) {
    // A plan waiting for a dead replica's job will never be applied.
    Registrar* registrar = core->registrar_.get();
    core->fleet_jobs_ = std::make_unique<FleetJobs>(
        core->fleet_.get(), 1000, [registrar](const JobStatus& s) {
          if (s.plan_id.empty()) return;
          registrar->DropPlan(
              s.model, s.plan_id,
              "the replica running its quantization job stopped");
        });
  }
  ModelRegistry* registry = core->registry_.get();
  core->jobs_ = std::make_unique<JobManager>(
      core->store_->JobsDir(),
      [registry](const JobStatus& s) {
        registry->RecordJob(s.model,
                            absl::AsciiStrToLower(JobStateName(s.state)),
                            (s.ended_unix_ms - s.started_unix_ms) / 1000.0);
      },
      options.max_concurrent_jobs);
  if (core->fleet_jobs_ != nullptr) {
    core->jobs_->SetFleet(core->fleet_jobs_.get());
  }
  core->quantization_ = std::make_unique<QuantizationService>(
      core->store_.get(), core->registry_.get(), core->registrar_.get(),
      core->jobs_.get(), options.calibration, options.quantize_worker);
  return core;
}

void ServerCore::LoadStoredModels() {
  registry_->LoadStoredModels();
  if (store_->shared()) {
    // Other replicas' writes from the scan on; a job another replica runs
    // may still complete a plan, so plans stay.
    ModelRegistry* registry = registry_.get();
    store_->Follow(
        [registry](const std::string& name) { registry->Converge(name); },
        options_.cluster.blob_grace);
  } else {
    // No job outlives a restart (those cut short are INTERRUPTED), so a plan
    // still waiting for its variant will never be applied.
    registrar_->DropAllPlans(
        "the server restarted before the quantization job that was to make "
        "its variant finished");
  }
  // Rollouts resume (counting each stage afresh) once models are loaded.
  rollout_ = std::make_unique<RolloutDriver>(registry_.get(), traffic_.get(),
                                             options_.rollout_tick_ms,
                                             fleet_rollouts_.get());
  ready_ = true;
}

void ServerCore::Shutdown() {
  ready_ = false;
  if (rollout_ != nullptr) rollout_->Stop();
  // Jobs call into the quantization service, the registrar, the registry
  // and the store: they stop while all of those still exist.
  if (jobs_ != nullptr) jobs_->Shutdown();
  // The store's watch calls into the registry.
  if (store_ != nullptr) store_->StopFollowing();
}

ServerCore::~ServerCore() {
  Shutdown();
  rollout_.reset();
  quantization_.reset();
  jobs_.reset();
  // The fleet's claim watch calls into fleet_jobs_ and through it the
  // registrar: it stops (and the replica's lease goes) before they do.
  fleet_.reset();
  fleet_rollouts_.reset();
  fleet_jobs_.reset();
  engine_.reset();
  traffic_.reset();
  registrar_.reset();
  registry_.reset();
  schedulers_.reset();
  store_.reset();
  metadata_.reset();
  etcd_.reset();
}

}  // namespace twinserve
