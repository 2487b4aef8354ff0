// ModelRegistry: the models the server knows, their variants and each
// variant's lifecycle, backed by the ModelStore.
//
// Variant lifecycle (after TF Serving's LoaderHarness):
//
//   kLoading ──ok──> kReady ──Unload──> kUnloading ──> kUnloaded
//      │                                                   │
//      └──error──> kFailed <───────────── Load error ──────┘
//
// (kCalibrating and kQuantizing are entered by quantization jobs.) A variant
// is published only once it has loaded; replacing it swaps a ref-counted
// ServableHandle, so requests in flight finish on the old one, which is
// released with its last handle. A failed variant never disturbs the others.
//
// Thread-safe. Slow work (loading a model) runs outside the registry lock.
#ifndef TWINSERVE_SERVER_CORE_REGISTRY_H_
#define TWINSERVE_SERVER_CORE_REGISTRY_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/core/batching.h"
#include "server/core/metrics.h"
#include "server/core/router.h"
#include "server/core/runner.h"
#include "server/core/stats.h"
#include "server/core/store.h"

namespace twinserve {

enum class VariantState {
  kLoading,
  kCalibrating,
  kQuantizing,
  kReady,
  kFailed,
  kUnloading,
  kUnloaded,
};
const char* VariantStateName(VariantState state);

// The variant every model has from registration on.
inline constexpr char kFp32Variant[] = "fp32";

// One loaded variant. Immutable once published.
struct Servable {
  std::string model;
  std::string variant;
  uint64_t generation = 0;
  std::shared_ptr<const Runner> runner;
  std::shared_ptr<VariantStats> stats;
  // Dynamic batching settings in force; a change publishes a copy of the
  // servable with the new settings (same runner, same statistics).
  std::shared_ptr<const BatchingConfig> batching;
};
using ServableHandle = std::shared_ptr<const Servable>;

struct VariantStatus {
  std::string name;
  VariantState state = VariantState::kLoading;
  uint64_t serialized_bytes = 0;
  uint64_t parameter_bytes = 0;
  std::string sha256;
  int64_t created_unix_ms = 0;
  std::string last_error;
  std::string execution_path;
  // True while a job makes this variant anew (it may still serve).
  bool pending = false;
  // The batching settings it runs with.
  BatchingConfig batching;
};

struct ModelStatus {
  std::string name;
  std::string description;
  Signature signature;
  std::vector<VariantStatus> variants;
  int64_t created_unix_ms = 0;
  int64_t updated_unix_ms = 0;
  uint64_t generation = 0;
  // kReady when every variant is; kFailed with last_error when the store
  // entry or a variant is broken; kUnloaded after Unload().
  VariantState state = VariantState::kLoading;
  std::string last_error;
  BatchingPolicy batching;
};

struct RegisterArgs {
  std::string name;
  std::string description;
  Signature signature;
  bool replace = false;
  // With replace: keep the previous generation's fp32 serving beside the new
  // one as variant "fp32-g<previous generation>", with the traffic pinned to
  // it until the operator moves it (A/B between two FP32 generations).
  bool keep_previous = false;
  // Dynamic batching; unset keeps a replaced model's settings (or off).
  std::optional<BatchingConfig> batching;
};

class ModelRegistry {
 public:
  // `store` (and `metrics`, if not null) must outlive the registry.
  ModelRegistry(ModelStore* store, RunnerOptions runner_options,
                Metrics* metrics = nullptr);

  // Loads every model in the store. A broken entry is logged and listed as
  // kFailed with its reason; it never stops the others.
  void LoadStoredModels();

  // Validates, loads and checks the uploaded model, then stores it durably
  // as the fp32 variant (a new generation when replacing). `file` is consumed
  // on success and deleted on failure.
  // Errors: INVALID_ARGUMENT (name, specs, not TorchScript, forward fails on
  // the declared inputs, outputs differ from the declared ones),
  // ALREADY_EXISTS (name taken, replace not set), ABORTED (another change to
  // the same model is in progress), storage errors.
  absl::StatusOr<ModelStatus> Register(const RegisterArgs& args,
                                       const StagedFile& file);
  // Adds (or replaces) a variant of an existing model from an uploaded file
  // that is already in its final form, e.g. an INT8 model from
  // quantization-aware training. Checked against the model's signature.
  // Errors as Register, plus NOT_FOUND for an unknown model and
  // INVALID_ARGUMENT for the variant name "fp32" (register the model).
  absl::StatusOr<ModelStatus> RegisterVariant(const std::string& name,
                                              const std::string& variant,
                                              const StagedFile& file);

  // The stored record of a model. NOT_FOUND, or the store entry's error.
  absl::StatusOr<ModelRecord> GetRecord(const std::string& name) const;
  // Replaces the in-memory record after a store write that did not touch
  // variants (calibration sets). ABORTED if the model's generation moved.
  absl::Status UpdateRecord(const ModelRecord& record);
  // Publishes a variant that was just stored as `record` (which holds it):
  // the swap is atomic and requests in flight finish on the old servable.
  // ABORTED if the model was replaced or removed since `generation`.
  absl::Status PublishVariant(const ModelRecord& record,
                              const std::string& variant,
                              std::unique_ptr<Runner> runner);
  // Shows a derived variant as being made (kQuantizing) while a job runs;
  // a variant that already serves keeps serving and keeps its state.
  void MarkVariantPending(const std::string& name, const std::string& variant,
                          VariantState state);
  // Ends MarkVariantPending without a result: a placeholder slot goes away.
  void ClearVariantPending(const std::string& name, const std::string& variant);

  // Removes the model from memory and from the store. NOT_FOUND if unknown.
  absl::Status Unregister(const std::string& name);
  // RepositoryModelUnload / Load: stop serving a stored model, or (re)load
  // it from the store.
  absl::Status Unload(const std::string& name);
  absl::Status Load(const std::string& name);

  std::vector<ModelStatus> List() const;
  absl::StatusOr<ModelStatus> Get(const std::string& name) const;

  // The servable for a request. An empty version lets the model's traffic
  // policy choose (sticky by `routing_key` when given); a chosen variant
  // that is not ready falls back to the policy's baseline. A named version
  // bypasses the policy. NOT_FOUND for an unknown model or version;
  // UNAVAILABLE if the variant exists but is not ready.
  absl::StatusOr<ServableHandle> Acquire(
      const std::string& name, const std::string& version,
      absl::string_view routing_key = "") const;

  // A variant to run beside a request, off the response path, for
  // comparison: the shadow candidate (shadow policy) or the baseline (a
  // rollout's candidate served). `run` is null when there is none.
  struct Comparison {
    ServableHandle run;
    std::string candidate;  // drift is recorded under this variant
    bool served_is_baseline = true;
  };
  Comparison CompareFor(const std::string& name,
                        const std::string& served) const;

  // Traffic policy. SetPolicy validates against the model's ready variants,
  // bumps the version, appends to the history and persists both before it
  // takes effect. `action` is "set", "promote" or "rollback".
  absl::StatusOr<TrafficPolicy> SetPolicy(const std::string& name,
                                          TrafficPolicy policy,
                                          const std::string& action,
                                          const std::string& actor,
                                          const std::string& reason);
  absl::StatusOr<TrafficPolicy> GetPolicy(const std::string& name) const;
  absl::StatusOr<std::vector<PolicyChange>> PolicyHistory(
      const std::string& name) const;
  // Makes `variant` the baseline: all traffic to it.
  absl::StatusOr<TrafficPolicy> Promote(const std::string& name,
                                        const std::string& variant,
                                        const std::string& actor,
                                        const std::string& reason);
  // Back to the policy before the current one, at once.
  // FAILED_PRECONDITION when there is none.
  absl::StatusOr<TrafficPolicy> Rollback(const std::string& name,
                                         const std::string& actor,
                                         const std::string& reason);

  // Changes the dynamic batching settings of `variant`, or with an empty
  // variant the model's default (for variants without their own); `clear`
  // drops a variant's own settings. Persisted before it takes effect;
  // requests already queued finish under the old settings.
  // Errors: NOT_FOUND (model, variant), INVALID_ARGUMENT (values),
  // FAILED_PRECONDITION (the model is not batchable), ABORTED.
  absl::StatusOr<BatchingPolicy> SetBatching(const std::string& name,
                                             const std::string& variant,
                                             BatchingConfig config, bool clear);

  // Statistics per (model, variant), for ModelStatistics.
  struct StatsEntry {
    std::string model;
    std::string variant;
    StatsSnapshot stats;
  };
  std::vector<StatsEntry> Stats(const std::string& model,
                                const std::string& variant) const;

 private:
  struct VariantSlot {
    VariantState state = VariantState::kLoading;
    std::string last_error;
    ServableHandle servable;  // set while kReady
    std::shared_ptr<VariantStats> stats = std::make_shared<VariantStats>();
    bool pending = false;
  };
  struct Entry {
    absl::StatusOr<ModelRecord> record = absl::UnknownError("unset");
    std::map<std::string, VariantSlot> variants;
    bool unloaded = false;
    TrafficPolicy policy;
    std::vector<PolicyChange> history;
    BatchingPolicy batching;
  };
  // Parses a record's policy, history and batching settings into `e`
  // (defaults when absent).
  static void LoadPolicy(const ModelRecord& record, Entry* e);
  // Gives every loaded servable of `e` its batching settings (servables are
  // immutable: a changed setting publishes a copy).
  static void ApplyBatchingLocked(Entry* e);

  // Loads every variant of `record` and publishes the result.
  void LoadEntry(const std::string& name, absl::StatusOr<ModelRecord> record);
  absl::StatusOr<ServableHandle> LoadVariant(
      const ModelRecord& record, const std::string& variant,
      std::shared_ptr<VariantStats> stats) const;
  RunnerOptions OptionsFor(const std::string& variant) const;
  // The entry of `name`, or NOT_FOUND naming it.
  absl::StatusOr<const Entry*> FindLocked(const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ModelStatus StatusLocked(const std::string& name, const Entry& e) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The entry that `record` was read from, or ABORTED when the model has
  // been replaced (another generation) or removed since.
  absl::StatusOr<Entry*> SameGenerationLocked(const ModelRecord& record)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  class ChangeGuard;
  // Claims exclusive right to change `name`; ABORTED if someone holds it.
  absl::Status BeginChange(const std::string& name);
  void EndChange(const std::string& name);

  ModelStore* const store_;
  const RunnerOptions runner_options_;
  Metrics* const metrics_;
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> changing_ ABSL_GUARDED_BY(mu_);
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_REGISTRY_H_
