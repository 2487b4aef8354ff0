#include "server/core/quantization.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "server/common/file_util.h"
#include "server/common/logging.h"
#include "server/common/names.h"
#include "server/common/status_macros.h"
#include "server/runtime/unsafe_ops.h"

namespace twinserve {

QuantizationService::QuantizationService(ModelStore* store,
                                         ModelRegistry* registry,
                                         Registrar* registrar, JobManager* jobs,
                                         CalibrationLimits limits,
                                         QuantizeWorkerOptions worker)
    : store_(store),
      registry_(registry),
      registrar_(registrar),
      jobs_(jobs),
      limits_(limits),
      worker_(std::move(worker)) {}

absl::StatusOr<CalibrationSet> QuantizationService::NewSet(
    const std::string& model, const std::string& set) const {
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  TS_RETURN_IF_ERROR(ValidateName(set, "calibration set name"));
  TS_ASSIGN_OR_RETURN(ModelRecord record, store_->GetLatest(model));
  return CalibrationSet::ForSignature(record.signature, set);
}

absl::StatusOr<CalibrationInfo> QuantizationService::PutSet(
    const std::string& model, const CalibrationSet& samples, bool replace) {
  if (samples.num_samples() == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "calibration set '", samples.name(), "' holds no samples"));
  }
  TS_ASSIGN_OR_RETURN(StagedFile staged,
                      store_->StageBytes(samples.Serialize()));
  CalibrationRecord meta;
  meta.samples = samples.num_samples();
  meta.labels = samples.has_labels();
  auto c = registrar_->PutCalibrationSet(model, samples.name(), staged, meta,
                                         replace);
  RemoveAll(staged.path).IgnoreError();  // unless the store took it
  if (!c.ok()) return c.status();
  return CalibrationInfo{model,    samples.name(), c->samples,
                         c->bytes, c->labels,      c->created_unix_ms};
}

absl::StatusOr<std::vector<CalibrationInfo>> QuantizationService::ListSets(
    const std::string& model) const {
  TS_ASSIGN_OR_RETURN(ModelRecord record, store_->GetLatest(model));
  std::vector<CalibrationInfo> out;
  for (const auto& [name, c] : record.calibration_sets) {
    out.push_back(
        {model, name, c.samples, c.bytes, c.labels, c.created_unix_ms});
  }
  return out;
}

absl::Status QuantizationService::DeleteSet(const std::string& model,
                                            const std::string& set) {
  return registrar_->DeleteCalibrationSet(model, set);
}

absl::StatusOr<StoredSetFile> QuantizationService::SetFile(
    const ModelRecord& record, const std::string& set) const {
  auto it = record.calibration_sets.find(set);
  if (it == record.calibration_sets.end()) {
    return absl::NotFoundError(absl::StrCat(
        "model '", record.name, "' has no calibration set '", set,
        "'; upload one with UploadCalibration (twinctl calibrate)"));
  }
  return StoredSetFile{set, store_->CalibrationPath(record.name, it->second),
                       it->second.sha256};
}

absl::StatusOr<CalibrationSet> QuantizationService::LoadSet(
    const std::string& model, const std::string& set) const {
  TS_ASSIGN_OR_RETURN(ModelRecord record, store_->GetLatest(model));
  TS_ASSIGN_OR_RETURN(StoredSetFile f, SetFile(record, set));
  return CalibrationSet::ReadStored(f.path, f.sha256, f.name);
}

absl::StatusOr<JobStatus> QuantizationService::StartQuantize(
    const QuantizeRequest& in) {
  TS_RETURN_IF_ERROR(registry_->CheckWritable());
  QuantizeRequest request = in;
  if (request.variant.empty()) {
    request.variant = DefaultVariantName(request.options.mode);
  }
  TS_RETURN_IF_ERROR(ValidateName(request.variant, "variant name"));
  if (IsFp32Variant(request.variant)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the quantized variant cannot be named '", request.variant,
                     "': fp32 names are the model's own"));
  }
  TS_RETURN_IF_ERROR(ValidateQuantizeOptions(request.options));
  TS_ASSIGN_OR_RETURN(ModelRecord record, store_->GetLatest(request.model));
  // Before the job's work, not after it.
  TS_RETURN_IF_ERROR(registrar_->CheckRoomForVariant(record, request.variant));
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
  TS_RETURN_IF_ERROR(
      registry_->Acquire(request.model, kFp32Variant, "").status());
  const std::string registration = record.registration_id;
  return jobs_->Start(
      request.model, request.variant, "quantize",
      [this, request, registration](JobContext& ctx) {
        auto result = RunQuantize(request, registration, ctx);
        if (!result.ok() && !request.plan_id.empty()) {
          registrar_->DropPlan(
              request.model, request.plan_id,
              absl::StrCat("its job ended without ", request.variant, ": ",
                           result.status().message()));
        }
        return result;
      },
      request.plan_id);
}

absl::StatusOr<OneCallResult> QuantizationService::RegisterAndQuantize(
    OneCallRegistration in, const StagedFile& file,
    const std::atomic<bool>* cancel_wait) {
  // Everything checkable is checked before the first write.
  if (in.quantize.has_value()) {
    QuantizeRequest& q = *in.quantize;
    q.model = in.args.name;
    q.calibration_set = "calib";
    q.eval_set = in.eval.has_value() ? "eval" : "";
    if (!in.calib.has_value() || in.calib->num_samples() == 0) {
      return absl::InvalidArgumentError(
          "quantize at registration needs calibration samples in the same "
          "stream (RegisterModelRequest.calibration)");
    }
    if (q.variant.empty()) q.variant = DefaultVariantName(q.options.mode);
    TS_RETURN_IF_ERROR(ValidateName(q.variant, "variant name"));
    if (IsFp32Variant(q.variant)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the quantized variant cannot be named '", q.variant, "'"));
    }
    TS_RETURN_IF_ERROR(ValidateQuantizeOptions(q.options));
  }
  if (in.args.plan.has_value()) {
    if (!in.quantize.has_value()) {
      return absl::InvalidArgumentError(
          "a traffic plan at registration needs quantize: it applies to the "
          "variant the job makes");
    }
    TrafficPlan& plan = *in.args.plan;
    plan.variant = in.quantize->variant;
    plan.id = absl::StrCat("plan-", RandomToken().substr(0, 12));
    TS_RETURN_IF_ERROR(CompletePlan(&plan));
    in.quantize->plan_id = plan.id;
  }
  for (const std::optional<CalibrationSet>* set : {&in.calib, &in.eval}) {
    if (set->has_value() && (*set)->num_samples() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the ", (*set)->name(), " samples of the registration are empty"));
    }
  }

  OneCallResult out;
  TS_ASSIGN_OR_RETURN(out.model, registrar_->Register(in.args, file));
  if (in.calib.has_value()) {
    TS_RETURN_IF_ERROR(
        PutSet(in.args.name, *in.calib, /*replace=*/true).status());
  }
  if (in.eval.has_value()) {
    TS_RETURN_IF_ERROR(
        PutSet(in.args.name, *in.eval, /*replace=*/true).status());
  }
  if (!in.quantize.has_value()) return out;
  auto job = StartQuantize(*in.quantize);
  if (!job.ok()) {
    if (in.args.plan.has_value()) {
      registrar_->DropPlan(in.args.name, in.args.plan->id,
                           "its job did not start");
    }
    return job.status();
  }
  out.job = *job;
  while (in.wait_for_variant && !IsTerminal(out.job->state)) {
    if (cancel_wait != nullptr && cancel_wait->load()) break;
    absl::SleepFor(absl::Milliseconds(20));
    auto now = jobs_->Get(out.job->id);
    if (!now.ok()) break;
    out.job = *now;
  }
  if (auto m = registry_->Get(in.args.name); m.ok()) out.model = *m;
  return out;
}

absl::StatusOr<std::string> QuantizationService::RunQuantize(
    const QuantizeRequest& request, const std::string& registration_id,
    JobContext& ctx) {
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
  TS_ASSIGN_OR_RETURN(ModelRecord record, store_->GetLatest(request.model));
  if (record.registration_id != registration_id) {
    return absl::AbortedError(absl::StrCat(
        "model '", request.model,
        "' was registered anew before the job started; nothing was made"));
  }
  TS_ASSIGN_OR_RETURN(StoredSetFile calib_file,
                      SetFile(record, request.calibration_set));
  StoredSetFile eval_file;
  if (!request.eval_set.empty()) {
    TS_ASSIGN_OR_RETURN(eval_file, SetFile(record, request.eval_set));
  }
  TS_ASSIGN_OR_RETURN(Acquired fp32,
                      registry_->Acquire(request.model, kFp32Variant, ""));
  if (fp32.served->registration_id != registration_id) {
    return absl::AbortedError(absl::StrCat(
        "model '", request.model,
        "' was registered anew before the job started; nothing was made"));
  }
  const std::string fp32_path =
      store_->VariantPath(record.name, record.variants.at(kFp32Variant));
  const uint64_t fp32_bytes = record.variants.at(kFp32Variant).bytes;

  staging = store_->NewStagingPath(".pt");
  const auto on_progress = [&ctx](const QuantizeProgress& p) {
    ctx.Progress(p.stage, p.done, p.total);
  };
  QuantizeResult result;
  if (worker_.binary.empty()) {
    // In this process: the sets are read here (the worker reads its own).
    TS_ASSIGN_OR_RETURN(
        CalibrationSet calib,
        CalibrationSet::ReadStored(calib_file.path, calib_file.sha256,
                                   calib_file.name));
    CalibrationSet eval;
    if (!eval_file.path.empty()) {
      TS_ASSIGN_OR_RETURN(
          eval, CalibrationSet::ReadStored(eval_file.path, eval_file.sha256,
                                           eval_file.name));
    }
    QuantizeInputs inputs;
    inputs.fp32_path = fp32_path;
    inputs.signature = record.signature;
    inputs.calibration = &calib;
    inputs.evaluation = eval_file.path.empty() ? nullptr : &eval;
    inputs.fp32_runner = fp32.served->runner.get();
    inputs.fp32_serialized_bytes = fp32_bytes;
    TS_ASSIGN_OR_RETURN(result, QuantizeModel(inputs, request.options, staging,
                                              on_progress, ctx.cancel_flag()));
  } else {
    WorkerJob job;
    job.fp32_path = fp32_path;
    job.fp32_serialized_bytes = fp32_bytes;
    job.signature = record.signature;
    job.calibration = calib_file;
    job.evaluation = eval_file;
    job.options = request.options;
    job.output_path = staging;
    job.optimize_fp32 = worker_.optimize_fp32;
    job.intra_op_threads = worker_.intra_op_threads;
    job.allow_unsafe_ops = UnsafeOpsAllowed();
    TS_ASSIGN_OR_RETURN(
        result.report,
        QuantizeInWorker(worker_.binary, job, on_progress, ctx.cancel_flag()));
    // The worker checked that the artifact runs; this is the server's own
    // copy, loaded as a restart would load it.
    ctx.Progress("loading", 0, 0);
    auto runner = Runner::Load(staging, record.signature,
                               registry_->OptionsFor(request.variant));
    if (!runner.ok()) {
      return absl::InternalError(absl::StrCat(
          "the quantized model does not load: ", runner.status().message()));
    }
    result.runner = std::move(*runner);
  }
  if (ctx.cancel_flag()->load()) {
    return absl::CancelledError("quantization was cancelled");
  }
  ctx.Progress("storing", 0, 0);
  TS_ASSIGN_OR_RETURN(StagedFile staged, store_->AdoptStagingFile(staging));
  VariantRecord extra;
  extra.parameter_bytes = result.report.int8_parameter_bytes;
  extra.report_json = result.report.ToJson();
  // Into the registration the job started for, or not at all.
  TS_RETURN_IF_ERROR(registrar_->PublishVariant(
      request.model, registration_id, request.variant, staged, extra,
      std::move(result.runner), request.plan_id));
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
  TS_ASSIGN_OR_RETURN(ModelRecord record, store_->GetLatest(model));
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
