#include "server/core/quantization.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/core/file_util.h"
#include "server/core/logging.h"
#include "server/core/status_macros.h"
#include "server/core/store.h"

namespace twinserve {

QuantizationService::QuantizationService(ModelStore* store,
                                         ModelRegistry* registry,
                                         JobManager* jobs,
                                         CalibrationLimits limits,
                                         Metrics* metrics)
    : store_(store),
      registry_(registry),
      jobs_(jobs),
      limits_(limits),
      metrics_(metrics) {}

absl::StatusOr<CalibrationSet> QuantizationService::NewSet(
    const std::string& model, const std::string& set) const {
  TS_RETURN_IF_ERROR(ValidateModelName(set));
  TS_ASSIGN_OR_RETURN(ModelRecord record, registry_->GetRecord(model));
  return CalibrationSet::ForSignature(record.signature, set);
}

absl::StatusOr<CalibrationInfo> QuantizationService::PutSet(
    const std::string& model, const CalibrationSet& samples, bool replace) {
  if (samples.num_samples() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "calibration set '", samples.name(), "' holds no samples"));
  }
  TS_ASSIGN_OR_RETURN(ModelRecord record, registry_->GetRecord(model));
  if (record.calibration_sets.count(samples.name()) && !replace) {
    return absl::AlreadyExistsError(
        absl::StrCat("model '", model, "' already has a calibration set '",
                     samples.name(), "'; set replace to overwrite it"));
  }
  TS_ASSIGN_OR_RETURN(StagedFile staged,
                      store_->StageBytes(samples.Serialize()));
  CalibrationRecord meta;
  meta.samples = samples.num_samples();
  meta.labels = samples.has_labels();
  absl::Status st =
      store_->PutCalibrationSet(&record, samples.name(), staged, meta);
  if (!st.ok()) {
    RemoveAll(staged.path).IgnoreError();
    return st;
  }
  TS_RETURN_IF_ERROR(registry_->UpdateRecord(record));
  const CalibrationRecord& c = record.calibration_sets.at(samples.name());
  return CalibrationInfo{model,   samples.name(), c.samples,
                         c.bytes, c.labels,       c.created_unix_ms};
}

absl::StatusOr<std::vector<CalibrationInfo>> QuantizationService::ListSets(
    const std::string& model) const {
  TS_ASSIGN_OR_RETURN(ModelRecord record, registry_->GetRecord(model));
  std::vector<CalibrationInfo> out;
  for (const auto& [name, c] : record.calibration_sets) {
    out.push_back(
        {model, name, c.samples, c.bytes, c.labels, c.created_unix_ms});
  }
  return out;
}

absl::Status QuantizationService::DeleteSet(const std::string& model,
                                            const std::string& set) {
  TS_ASSIGN_OR_RETURN(ModelRecord record, registry_->GetRecord(model));
  TS_RETURN_IF_ERROR(store_->RemoveCalibrationSet(&record, set));
  return registry_->UpdateRecord(record);
}

absl::StatusOr<CalibrationSet> QuantizationService::LoadSet(
    const std::string& model, const std::string& set) const {
  TS_ASSIGN_OR_RETURN(ModelRecord record, registry_->GetRecord(model));
  auto it = record.calibration_sets.find(set);
  if (it == record.calibration_sets.end()) {
    return absl::NotFoundError(absl::StrCat(
        "model '", model, "' has no calibration set '", set,
        "'; upload one with UploadCalibration (twinctl calibrate)"));
  }
  TS_ASSIGN_OR_RETURN(std::string bytes,
                      ReadFile(store_->CalibrationPath(model, it->second)));
  Sha256 sha;
  sha.Update(bytes);
  if (sha.HexDigest() != it->second.sha256) {
    return absl::DataLossError(
        absl::StrCat("calibration set '", set, "' is corrupt on disk"));
  }
  return CalibrationSet::Parse(bytes);
}

absl::StatusOr<JobStatus> QuantizationService::StartQuantize(
    const QuantizeRequest& request) {
  TS_RETURN_IF_ERROR(ValidateModelName(request.variant));
  if (request.variant == kFp32Variant) {
    return absl::InvalidArgumentError(
        "the quantized variant cannot be named 'fp32'");
  }
  TS_ASSIGN_OR_RETURN(ModelRecord record, registry_->GetRecord(request.model));
  auto set = record.calibration_sets.find(request.calibration_set);
  if (set == record.calibration_sets.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", request.model, "' has no calibration set '",
                     request.calibration_set, "'; upload samples first"));
  }
  if (set->second.samples == 0) {
    return absl::FailedPreconditionError("the calibration set is empty");
  }
  if (!request.eval_set.empty() &&
      !record.calibration_sets.count(request.eval_set)) {
    return absl::NotFoundError(absl::StrCat("model '", request.model,
                                            "' has no evaluation set '",
                                            request.eval_set, "'"));
  }
  TS_RETURN_IF_ERROR(registry_->Acquire(request.model, kFp32Variant).status());
  return jobs_->Start(
      request.model, request.variant, "quantize",
      [this, request](JobContext& ctx) { return RunQuantize(request, ctx); });
}

absl::StatusOr<std::string> QuantizationService::RunQuantize(
    const QuantizeRequest& request, JobContext& ctx) {
  registry_->MarkVariantPending(request.model, request.variant,
                                VariantState::kQuantizing);
  std::string staging;
  struct Cleanup {
    ModelRegistry* registry;
    const QuantizeRequest& request;
    std::string* staging;
    ~Cleanup() {
      registry->ClearVariantPending(request.model, request.variant);
      if (!staging->empty()) RemoveAll(*staging).IgnoreError();
    }
  } cleanup{registry_, request, &staging};

  ctx.Progress("loading calibration samples", 0, 0);
  TS_ASSIGN_OR_RETURN(CalibrationSet calib,
                      LoadSet(request.model, request.calibration_set));
  CalibrationSet eval;
  if (!request.eval_set.empty()) {
    TS_ASSIGN_OR_RETURN(eval, LoadSet(request.model, request.eval_set));
  }
  TS_ASSIGN_OR_RETURN(ServableHandle fp32,
                      registry_->Acquire(request.model, kFp32Variant));
  TS_ASSIGN_OR_RETURN(ModelRecord record, registry_->GetRecord(request.model));
  if (record.generation != fp32->generation) {
    return absl::AbortedError("the model changed while the job started");
  }
  QuantizeInputs inputs;
  inputs.fp32_path =
      store_->VariantPath(record.name, record.variants.at(kFp32Variant));
  inputs.signature = record.signature;
  inputs.calibration = &calib;
  inputs.evaluation = request.eval_set.empty() ? nullptr : &eval;
  inputs.fp32_runner = fp32->runner.get();
  inputs.fp32_serialized_bytes = record.variants.at(kFp32Variant).bytes;

  staging = store_->NewStagingPath(".pt");
  TS_ASSIGN_OR_RETURN(QuantizeResult result,
                      QuantizeModel(
                          inputs, request.options, staging,
                          [&ctx](const QuantizeProgress& p) {
                            ctx.Progress(p.stage, p.done, p.total);
                          },
                          ctx.cancel_flag()));
  if (ctx.cancel_flag()->load()) {
    return absl::CancelledError("quantization was cancelled");
  }
  ctx.Progress("storing", 0, 0);
  TS_ASSIGN_OR_RETURN(StagedFile staged, store_->AdoptStagingFile(staging));
  TS_ASSIGN_OR_RETURN(record, registry_->GetRecord(request.model));
  if (record.generation != fp32->generation) {
    return absl::AbortedError(
        "the model was replaced during quantization; nothing was published");
  }
  VariantRecord extra;
  extra.parameter_bytes = result.report.int8_parameter_bytes;
  extra.report_json = result.report.ToJson();
  TS_RETURN_IF_ERROR(
      store_->PutVariant(&record, request.variant, staged, extra));
  staging.clear();  // the store owns it now
  TS_RETURN_IF_ERROR(registry_->PublishVariant(record, request.variant,
                                               std::move(result.runner)));
  const QuantizationReport& r = result.report;
  return absl::StrFormat(
      "%s published: top-1 agreement %.2f%%%s, b1 latency %.3f -> %.3f ms",
      request.variant, r.top1_agreement,
      r.fp32_accuracy >= 0 ? absl::StrFormat(", accuracy %.2f%% -> %.2f%%",
                                             r.fp32_accuracy, r.int8_accuracy)
                           : "",
      r.fp32_latency_ms_b1, r.int8_latency_ms_b1);
}

absl::StatusOr<QuantizationReport> QuantizationService::GetReport(
    const std::string& model, const std::string& variant) const {
  TS_ASSIGN_OR_RETURN(ModelRecord record, registry_->GetRecord(model));
  auto it = record.variants.find(variant);
  if (it == record.variants.end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' has no variant '", variant, "'"));
  }
  if (it->second.report_json.empty()) {
    return absl::NotFoundError(
        absl::StrCat("variant '", variant,
                     "' was not made by quantization here; it has "
                     "no report"));
  }
  return QuantizationReport::FromJson(it->second.report_json);
}

}  // namespace twinserve
