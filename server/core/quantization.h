// QuantizationService: calibration sets and quantization jobs for the
// registry's models. Sets are stored durably per model; a job quantizes
// from them in the background and publishes the new variant atomically,
// while the FP32 variant keeps serving.
#ifndef TWINSERVE_SERVER_CORE_QUANTIZATION_H_
#define TWINSERVE_SERVER_CORE_QUANTIZATION_H_

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "quant/calibration_set.h"
#include "quant/quantize_worker.h"
#include "quant/quantizer.h"
#include "server/core/jobs.h"
#include "server/core/registrar.h"
#include "server/core/registry.h"
#include "server/store/model_store.h"

namespace twinserve {

struct CalibrationInfo {
  std::string model;
  std::string name;
  int64_t samples = 0;
  uint64_t bytes = 0;
  bool labels = false;
  int64_t created_unix_ms = 0;
};

struct QuantizeRequest {
  std::string model;
  // Empty: the mode's default (DefaultVariantName).
  std::string variant;
  std::string calibration_set = "calib";
  std::string eval_set;  // empty: hold out a slice of the calibration set
  QuantizeOptions options;
  // The pending traffic plan this job applies when it publishes (set by
  // RegisterAndQuantize); dropped if the job ends otherwise.
  std::string plan_id;
};

// RegisterModel with quantization in the same call.
struct OneCallRegistration {
  RegisterArgs args;                    // args.plan: applied when ready
  std::optional<CalibrationSet> calib;  // stored as set "calib"
  std::optional<CalibrationSet> eval;   // stored as set "eval"
  std::optional<QuantizeRequest> quantize;
  bool wait_for_variant = false;
};

struct OneCallResult {
  ModelStatus model;
  std::optional<JobStatus> job;
};

class QuantizationService {
 public:
  // All must outlive the service; the jobs it starts must end (JobManager's
  // Shutdown) before it goes.
  // Jobs run in `worker.binary` when set (quant/quantize_worker.h), in
  // this process otherwise.
  QuantizationService(ModelStore* store, ModelRegistry* registry,
                      Registrar* registrar, JobManager* jobs,
                      CalibrationLimits limits,
                      QuantizeWorkerOptions worker = {});

  const CalibrationLimits& limits() const { return limits_; }

  // An empty set shaped for `model`'s inputs, to Append uploads to.
  // NOT_FOUND, FAILED_PRECONDITION (inputs without a batch dim).
  absl::StatusOr<CalibrationSet> NewSet(const std::string& model,
                                        const std::string& set) const;
  // Stores `samples` durably as `set` of `model`. ALREADY_EXISTS unless
  // `replace`; FAILED_PRECONDITION for an empty set.
  absl::StatusOr<CalibrationInfo> PutSet(const std::string& model,
                                         const CalibrationSet& samples,
                                         bool replace);
  absl::StatusOr<std::vector<CalibrationInfo>> ListSets(
      const std::string& model) const;
  absl::Status DeleteSet(const std::string& model, const std::string& set);
  absl::StatusOr<CalibrationSet> LoadSet(const std::string& model,
                                         const std::string& set) const;

  // Starts a quantization job for the model's current registration: what it
  // makes is published into that registration only. NOT_FOUND (model,
  // set), FAILED_PRECONDITION (empty set, a job already active for the
  // model), INVALID_ARGUMENT and UNIMPLEMENTED (ValidateQuantizeOptions).
  absl::StatusOr<JobStatus> StartQuantize(const QuantizeRequest& request);
  // Registers `file` as the model, stores the sets and starts the job, in
  // that order, after checking everything that can be checked first: a
  // request refused here (samples that do not match the declared inputs,
  // bad options, a plan for other variants, quantize without samples)
  // stores nothing. With wait_for_variant, returns when the job has ended.
  // Errors: those of Registrar::Register, PutSet and StartQuantize.
  absl::StatusOr<OneCallResult> RegisterAndQuantize(
      OneCallRegistration request, const StagedFile& file,
      const std::atomic<bool>* cancel_wait);
  absl::StatusOr<QuantizationReport> GetReport(
      const std::string& model, const std::string& variant) const;

  JobManager* jobs() { return jobs_; }

 private:
  // Where `set` of `record` is stored; NOT_FOUND if it has none.
  absl::StatusOr<StoredSetFile> SetFile(const ModelRecord& record,
                                        const std::string& set) const;
  absl::StatusOr<std::string> RunQuantize(const QuantizeRequest& request,
                                          const std::string& registration_id,
                                          JobContext& ctx);

  ModelStore* const store_;
  ModelRegistry* const registry_;
  Registrar* const registrar_;
  JobManager* const jobs_;
  const CalibrationLimits limits_;
  const QuantizeWorkerOptions worker_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_QUANTIZATION_H_
