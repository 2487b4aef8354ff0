// Registrar: the writes that add or remove what a model is made of:
// registration (a new model or generation), variants (uploaded or made by a
// job), calibration sets, and removal. Each is one read-modify-write of the
// model's record in the store (compare-and-set, retried while other writers
// commit first), and the registry mirrors it from the commit hook, so no
// concurrent writer is ever lost and memory follows the store's order.
//
// Slow work (loading and checking a model) happens before the write, with
// nothing locked. A writer that captured a registration id (a job) commits
// only into that registration: a model unregistered and registered anew
// under the same name is refused with ABORTED.
#ifndef TWINSERVE_SERVER_CORE_REGISTRAR_H_
#define TWINSERVE_SERVER_CORE_REGISTRAR_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/core/registry.h"
#include "server/runtime/runner.h"
#include "server/serving/batching.h"
#include "server/store/model_store.h"
#include "server/traffic/plan.h"

namespace twinserve {

// How much one server holds; each past limit is RESOURCE_EXHAUSTED naming
// its flag. The model count is checked before the write (concurrent
// registrations of new names may pass it together); the per-model ones
// inside it.
struct ResourceLimits {
  int max_models = 256;           // --max_models
  int max_variants = 16;          // --max_variants (per model, fp32 incl.)
  int max_calibration_sets = 32;  // --max_calibration_sets (per model)
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
  // A traffic plan stored with the registration, applied when its variant
  // is published (PublishVariant with the plan's id).
  std::optional<TrafficPlan> plan;
};

class Registrar {
 public:
  // All must outlive the registrar.
  Registrar(ModelStore* store, ModelRegistry* registry,
            ResourceLimits limits = {});
  const ResourceLimits& limits() const { return limits_; }
  // RESOURCE_EXHAUSTED if `name` is not registered and no more models fit.
  absl::Status CheckRoomForModel(const std::string& name) const;
  // RESOURCE_EXHAUSTED if `record` has no room for a new `variant`.
  absl::Status CheckRoomForVariant(const ModelRecord& record,
                                   const std::string& variant) const;

  // Validates, loads and checks the uploaded model, then stores it durably
  // as the fp32 variant of a new registration (a new generation when
  // replacing). `file` is consumed on success and deleted on failure.
  // Errors: UNAVAILABLE (still loading), INVALID_ARGUMENT (name, specs, not
  // TorchScript, forward fails on the declared inputs, outputs differ from
  // the declared ones), ALREADY_EXISTS (name taken, replace not set),
  // storage errors.
  absl::StatusOr<ModelStatus> Register(const RegisterArgs& args,
                                       const StagedFile& file);
  // Adds (or replaces) a variant of an existing model from an uploaded file
  // already in its final form (e.g. INT8 from quantization-aware training),
  // checked against the model's signature. Errors as Register, plus
  // NOT_FOUND for an unknown model and INVALID_ARGUMENT for "fp32".
  absl::StatusOr<ModelStatus> RegisterVariant(const std::string& name,
                                              const std::string& variant,
                                              const StagedFile& file);
  // Stores `file` as `variant` of registration `registration_id` of `name`
  // and publishes `runner` for it (a quantization job's result). `extra`
  // carries the report and parameter bytes. ABORTED if the model was
  // registered anew, NOT_FOUND if it is gone; `file` is deleted then.
  // With `plan_id`, the pending traffic plan of that id (if still there
  // and valid) takes effect in the same write.
  absl::Status PublishVariant(const std::string& name,
                              const std::string& registration_id,
                              const std::string& variant,
                              const StagedFile& file, VariantRecord extra,
                              std::unique_ptr<Runner> runner,
                              const std::string& plan_id = "");
  // Drops the pending plan of `name` (only the one of `plan_id` when not
  // empty), logging `why`. NOT_FOUND-free: a missing model or plan is fine.
  void DropPlan(const std::string& name, const std::string& plan_id,
                const std::string& why);
  // Drops every pending plan (at start: no job outlives a restart, so no
  // pending plan can be applied any more).
  void DropAllPlans(const std::string& why);
  // Removes the model from memory and from the store. NOT_FOUND if unknown.
  absl::Status Unregister(const std::string& name);

  // Adds (or with `replace`, replaces) calibration set `set` of `name`
  // (`meta`'s file fields are filled in). ALREADY_EXISTS unless `replace`.
  absl::StatusOr<CalibrationRecord> PutCalibrationSet(const std::string& name,
                                                      const std::string& set,
                                                      const StagedFile& file,
                                                      CalibrationRecord meta,
                                                      bool replace);
  // NOT_FOUND if the model has no set of that name.
  absl::Status DeleteCalibrationSet(const std::string& name,
                                    const std::string& set);

 private:
  ModelStore* const store_;
  ModelRegistry* const registry_;
  const ResourceLimits limits_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_REGISTRAR_H_
