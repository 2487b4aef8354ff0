#include "server/core/server_core.h"

#include "server/core/status_macros.h"

namespace twinserve {

absl::StatusOr<std::unique_ptr<ServerCore>> ServerCore::Create(
    const ServerOptions& options) {
  std::unique_ptr<ServerCore> core(new ServerCore(options));
  core->metrics_ = std::make_unique<Metrics>();
  TS_ASSIGN_OR_RETURN(core->store_, ModelStore::Open(options.store_path));
  core->registry_ = std::make_unique<ModelRegistry>(
      core->store_.get(), options.runner, core->metrics_.get());
  core->engine_ = std::make_unique<InferenceEngine>(
      core->registry_.get(), options.engine,
      options.record_metrics ? core->metrics_.get() : nullptr);
  core->jobs_ = std::make_unique<JobManager>(core->store_->JobsDir());
  core->quantization_ = std::make_unique<QuantizationService>(
      core->store_.get(), core->registry_.get(), core->jobs_.get(),
      options.calibration, core->metrics_.get());
  return core;
}

void ServerCore::LoadStoredModels() {
  registry_->LoadStoredModels();
  // Rollouts resume (counting each stage afresh) once models are loaded.
  rollout_ =
      std::make_unique<RolloutController>(registry_.get(), metrics_.get());
  ready_ = true;
}

}  // namespace twinserve
