// ModelRegistry: the server's manager of servables (after TF Serving's
// AspiredVersionsManager): which models exist, each variant's lifecycle
// (server/core/model_state.h), the servable a request gets, and each
// model's traffic policy and batching settings as last committed.
//
// It mirrors the store: every change is first committed to the ModelStore
// by a writer (server/core/registrar.h, server/core/traffic_control.h) with
// a compare-and-set, and the registry applies it from the store's commit
// hook, so memory changes in the same order as the store. The registry
// itself only loads (runners from stored files) and routes.
//
// Until LoadStoredModels has loaded every stored model, writers are refused
// (CheckWritable: UNAVAILABLE) and requests for a model not loaded yet are
// UNAVAILABLE, never NOT_FOUND: a model the store holds is never taken for
// absent.
//
// Thread-safe. Slow work (loading a model) runs outside the registry lock.
#ifndef TWINSERVE_SERVER_CORE_REGISTRY_H_
#define TWINSERVE_SERVER_CORE_REGISTRY_H_

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/core/model_state.h"
#include "server/runtime/runner.h"
#include "server/serving/batching.h"
#include "server/serving/live_histogram.h"
#include "server/serving/scheduler.h"
#include "server/serving/servable.h"
#include "server/serving/variant_stats.h"
#include "server/store/model_store.h"
#include "server/traffic/policy.h"

namespace twinserve {

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
  std::string registration_id;
  // kReady when every variant is; kFailed with last_error when the store
  // entry or a variant is broken; kUnloaded after Unload().
  VariantState state = VariantState::kLoading;
  std::string last_error;
  BatchingPolicy batching;
};

// What happened to a model, counted (exported as counters).
struct ModelEvents {
  std::map<std::string, uint64_t> policy_changes;  // by action
  // By who: "operator" or "guard:<name>" (never free text).
  std::map<std::string, uint64_t> rollbacks;
  std::map<std::string, uint64_t> jobs;  // by outcome
  HistogramSnapshot job_seconds;
};

// One model as readers that need more than its status see it, at once.
struct ModelView {
  ModelStatus status;
  TrafficPolicy policy;
  std::map<std::string, std::shared_ptr<VariantStats>> stats;  // by variant
  std::map<std::string, CalibrationRecord> calibration_sets;
  ModelEvents events;
};

class ModelRegistry : public ServableRouter {
 public:
  // `store` and `schedulers` must outlive the registry.
  ModelRegistry(ModelStore* store, SchedulerFactory* schedulers,
                RunnerOptions runner_options);
  ~ModelRegistry() override;

  // Scans the store and loads every model (a broken entry is listed as
  // kFailed with its reason and never stops the others), then opens the
  // registry to writers.
  void LoadStoredModels();
  bool loaded() const { return loaded_.load(); }
  // OK once loaded; UNAVAILABLE before. Every writer checks it first.
  absl::Status CheckWritable() const;

  // --- Reads ---------------------------------------------------------------
  absl::StatusOr<Acquired> Acquire(
      const std::string& model, const std::string& version,
      absl::string_view routing_key) const override;
  std::vector<ModelStatus> List() const;
  absl::StatusOr<ModelStatus> Get(const std::string& name) const;
  absl::StatusOr<ModelView> View(const std::string& name) const;
  std::vector<ModelView> Views() const;
  absl::StatusOr<TrafficPolicy> GetPolicy(const std::string& name) const;
  absl::StatusOr<std::vector<PolicyChange>> PolicyHistory(
      const std::string& name) const;
  // Variants of `name` that serve now (a policy may name only these).
  std::set<std::string> ReadyVariants(const std::string& name) const;
  // Statistics per (model, variant), for ModelStatistics; empty names match
  // all.
  struct StatsEntry {
    std::string model;
    std::string variant;
    StatsSnapshot stats;
  };
  std::vector<StatsEntry> Stats(const std::string& model,
                                const std::string& variant) const;

  // --- Mirrors of committed writes ------------------------------------------
  // REQUIRES: called from the store's commit hook of the write that
  // committed `committed` (so in commit order).
  //
  // A registration: `runner` serves as fp32; with `kept` non-empty the
  // previous fp32 servable keeps serving under that name.
  void ApplyRegistration(const ModelRecord& committed,
                         std::shared_ptr<const Runner> runner,
                         const std::string& kept);
  // A variant stored in `committed`, loaded as `runner`.
  void ApplyVariant(const ModelRecord& committed, const std::string& variant,
                    std::shared_ptr<const Runner> runner);
  // A change that loads nothing: policy, history, batching, sets.
  void ApplyRecord(const ModelRecord& committed);
  void ApplyRemoval(const std::string& name);
  // A shared store's copy of `name` changed (another server wrote it):
  // serves what the store now says, loading only variants whose artifact
  // changed. Called from the store's watch (ModelStore::Follow), one at a
  // time.
  void Converge(const std::string& name);

  // --- Events ---------------------------------------------------------------
  void RecordPolicyChange(const std::string& name, const std::string& action,
                          const std::string& actor);
  void RecordJob(const std::string& name, const std::string& outcome,
                 double seconds);

  // --- In memory only -------------------------------------------------------
  // RepositoryModelUnload / Load: stop serving a stored model, or (re)load
  // it from the store. NOT_FOUND if unknown; Load FAILED_PRECONDITION when a
  // variant does not load.
  absl::Status Unload(const std::string& name);
  absl::Status Load(const std::string& name);
  // Shows a derived variant as being made (`state`) while a job runs; a
  // variant that already serves keeps serving and keeps its state.
  void MarkVariantPending(const std::string& name, const std::string& variant,
                          VariantState state);
  // Ends MarkVariantPending without a result: a placeholder slot goes away.
  void ClearVariantPending(const std::string& name, const std::string& variant);

  // How variants load: FP32 through the optimization passes, derived
  // variants (saved frozen) as they are.
  RunnerOptions OptionsFor(const std::string& variant) const;

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
    ModelEvents events;
    std::shared_ptr<LiveHistogram> job_seconds;
  };

  // Serves `record`: loads (outside the lock) and installs every variant
  // not already served from the same artifact for the same registration.
  void LoadEntry(const std::string& name, absl::StatusOr<ModelRecord> record);
  // Parses the record's policy, history and batching into `e`.
  static void ParseRecordLocked(const ModelRecord& record, Entry* e);
  // A servable of `variant` with its own scheduler.
  ServableHandle MakeServable(const ModelRecord& record,
                              const std::string& variant,
                              std::shared_ptr<const Runner> runner,
                              std::shared_ptr<VariantStats> stats,
                              const BatchingConfig& batching) const;
  // Gives every loaded servable of `e` its batching settings (servables are
  // immutable: a changed setting publishes a copy with a new scheduler).
  void ApplyBatchingLocked(Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<const Entry*> FindLocked(const std::string& name) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ModelStatus StatusLocked(const std::string& name, const Entry& e) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  ModelView ViewLocked(const std::string& name, const Entry& e) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  ModelStore* const store_;
  SchedulerFactory* const schedulers_;
  const RunnerOptions runner_options_;
  std::atomic<bool> loaded_{false};
  mutable absl::Mutex mu_;
  std::map<std::string, Entry> models_ ABSL_GUARDED_BY(mu_);
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_REGISTRY_H_
