#include "server/grpc/management_service.h"

#include <algorithm>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/core/logging.h"
#include "server/core/model_stats.h"
#include "server/grpc/grpc_status_util.h"
#include "server/grpc/oip_codec.h"

namespace twinserve {
namespace {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

ServerUnaryReactor* Done(CallbackServerContext* ctx,
                         const absl::Status& status) {
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

v1::VariantState StateToProto(VariantState s) {
  switch (s) {
    case VariantState::kLoading:
      return v1::LOADING;
    case VariantState::kCalibrating:
      return v1::CALIBRATING;
    case VariantState::kQuantizing:
      return v1::QUANTIZING;
    case VariantState::kReady:
      return v1::READY;
    case VariantState::kFailed:
      return v1::FAILED;
    case VariantState::kUnloading:
      return v1::UNLOADING;
    case VariantState::kUnloaded:
      return v1::UNLOADED;
  }
  return v1::VARIANT_STATE_UNSPECIFIED;
}

void SpecToProto(const TensorSpec& spec, v1::TensorSpec* out) {
  out->set_name(spec.name);
  out->set_datatype(DataTypeName(spec.dtype));
  for (int64_t d : spec.shape) out->add_shape(d);
}

BatchingConfig BatchingFromProto(const v1::BatchingConfig& p) {
  BatchingConfig c;
  c.max_batch_size = p.max_batch_size();
  c.max_queue_delay_us = static_cast<int64_t>(
      std::min<uint64_t>(p.max_queue_delay_microseconds(), uint64_t{1} << 62));
  c.preferred_batch_sizes.assign(p.preferred_batch_sizes().begin(),
                                 p.preferred_batch_sizes().end());
  if (p.queue_capacity() != 0) c.queue_capacity = p.queue_capacity();
  return c;
}

void BatchingToProto(const BatchingConfig& c, v1::BatchingConfig* out) {
  out->set_max_batch_size(c.max_batch_size);
  out->set_max_queue_delay_microseconds(c.max_queue_delay_us);
  for (int p : c.preferred_batch_sizes) out->add_preferred_batch_sizes(p);
  out->set_queue_capacity(c.queue_capacity);
}

// Receives the upload, then hands registration to the slow-work pool.
class RegisterReactor
    : public grpc::ServerReadReactor<v1::RegisterModelRequest> {
 public:
  RegisterReactor(ServerCore* core, ThreadPool* pool,
                  CallbackServerContext* ctx, v1::RegisterModelResponse* resp)
      : core_(core), pool_(pool), ctx_(ctx), response_(resp) {
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (ctx_->IsCancelled()) {
        // The stream broke off: the upload's destructor deletes the file.
        Fail(absl::CancelledError("the upload stream was cancelled"));
        return;
      }
      Complete();
      return;
    }
    absl::Status st = Consume();
    if (!st.ok()) {
      Fail(st);
      return;
    }
    StartRead(&message_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Consume() {
    if (!have_header_) {
      if (!message_.has_header()) {
        return absl::InvalidArgumentError(
            "the first RegisterModel message must carry the header");
      }
      header_ = message_.header();
      have_header_ = true;
      absl::Status st = ValidateModelName(header_.name());
      if (!st.ok()) return st;
      auto upload = core_->store()->BeginUpload();
      if (!upload.ok()) return upload.status();
      upload_ = std::move(*upload);
      return absl::OkStatus();
    }
    if (message_.has_header()) {
      return absl::InvalidArgumentError(
          "RegisterModel got a second header; send it once, first");
    }
    const std::string& chunk = message_.chunk();
    const uint64_t max = core_->options().max_model_bytes;
    if (upload_->size() + chunk.size() > max) {
      return absl::ResourceExhaustedError(
          absl::StrCat("model file exceeds the limit of ", max,
                       " bytes (server flag --max_model_bytes)"));
    }
    return upload_->Append(chunk);
  }

  void Complete() {
    if (!have_header_) {
      Fail(absl::InvalidArgumentError("RegisterModel stream was empty"));
      return;
    }
    pool_->Schedule([this] {
      absl::Status st = Register();
      Finish(ToGrpcStatus(st));
    });
  }

  absl::Status Register() {
    if (header_.total_bytes() != 0 &&
        header_.total_bytes() != upload_->size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "truncated upload: the header announced ", header_.total_bytes(),
          " bytes, the stream carried ", upload_->size()));
    }
    RegisterArgs args;
    args.name = header_.name();
    // A variant upload takes its specs from the model.
    args.description = header_.description();
    args.replace = header_.replace();
    args.keep_previous = header_.keep_previous();
    if (header_.has_batching()) {
      args.batching = BatchingFromProto(header_.batching());
    }
    for (const auto& s : header_.inputs()) {
      auto spec = SpecFromProto(s);
      if (!spec.ok()) return spec.status();
      args.signature.inputs.push_back(*spec);
    }
    for (const auto& s : header_.outputs()) {
      auto spec = SpecFromProto(s);
      if (!spec.ok()) return spec.status();
      args.signature.outputs.push_back(*spec);
    }
    auto staged = upload_->Finish();
    if (!staged.ok()) return staged.status();
    auto status = header_.variant().empty()
                      ? core_->registry()->Register(args, *staged)
                      : core_->registry()->RegisterVariant(
                            args.name, header_.variant(), *staged);
    if (!status.ok()) {
      TS_LOG(WARNING) << "registration of '" << args.name
                      << "' refused: " << status.status();
      return status.status();
    }
    ModelStatusToProto(*status, response_->mutable_model());
    return absl::OkStatus();
  }

  void Fail(const absl::Status& st) {
    upload_.reset();
    Finish(ToGrpcStatus(st));
  }

  ServerCore* const core_;
  ThreadPool* const pool_;
  CallbackServerContext* const ctx_;
  v1::RegisterModelResponse* const response_;
  v1::RegisterModelRequest message_;
  v1::RegisterModelHeader header_;
  bool have_header_ = false;
  std::unique_ptr<Upload> upload_;
};

// Receives calibration samples into memory (bounded by the server's limits),
// then stores the set in one durable write when the stream ends.
class CalibrationReactor
    : public grpc::ServerReadReactor<v1::UploadCalibrationRequest> {
 public:
  CalibrationReactor(ServerCore* core, ThreadPool* pool,
                     CallbackServerContext* ctx, v1::CalibrationSetInfo* resp)
      : core_(core), pool_(pool), ctx_(ctx), response_(resp) {
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (ctx_->IsCancelled()) {
        Finish(ToGrpcStatus(absl::CancelledError(
            "the upload stream broke off; nothing was stored")));
        return;
      }
      if (!set_.has_value()) {
        Finish(ToGrpcStatus(
            absl::InvalidArgumentError("UploadCalibration stream was empty")));
        return;
      }
      pool_->Schedule([this] {
        auto info = core_->quantization()->PutSet(header_.model(), *set_,
                                                  header_.replace());
        if (info.ok()) {
          response_->set_model(info->model);
          response_->set_name(info->name);
          response_->set_samples(info->samples);
          response_->set_bytes(info->bytes);
          response_->set_labels(info->labels);
          response_->set_created_unix_ms(info->created_unix_ms);
        }
        Finish(ToGrpcStatus(info.status()));
      });
      return;
    }
    absl::Status st = Consume();
    if (!st.ok()) {
      Finish(ToGrpcStatus(st));
      return;
    }
    StartRead(&message_);
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Consume() {
    if (!set_.has_value()) {
      if (!message_.has_header()) {
        return absl::InvalidArgumentError(
            "the first UploadCalibration message must carry the header");
      }
      header_ = message_.header();
      const std::string name = header_.set().empty() ? "calib" : header_.set();
      auto set = core_->quantization()->NewSet(header_.model(), name);
      if (!set.ok()) return set.status();
      set_ = std::move(*set);
      return absl::OkStatus();
    }
    if (!message_.has_samples()) {
      return absl::InvalidArgumentError(
          "UploadCalibration got a second header; send it once, first");
    }
    const auto& samples = message_.samples();
    auto tensors =
        DecodeTensors(samples.inputs(), samples.raw_input_contents());
    if (!tensors.ok()) return tensors.status();
    std::vector<int64_t> labels(samples.labels().begin(),
                                samples.labels().end());
    return set_->Append(*tensors, labels, core_->quantization()->limits());
  }

  ServerCore* const core_;
  ThreadPool* const pool_;
  CallbackServerContext* const ctx_;
  v1::CalibrationSetInfo* const response_;
  v1::UploadCalibrationRequest message_;
  v1::CalibrationHeader header_;
  std::optional<CalibrationSet> set_;
};

// Streams a job's status: the latest state is written whenever the stream
// is free, so a slow reader sees fewer, never stale, updates.
class WatchReactor : public grpc::ServerWriteReactor<v1::Job> {
 public:
  WatchReactor(JobManager* jobs, const std::string& id)
      : jobs_(jobs), state_(std::make_shared<State>()) {
    state_->reactor = this;
    std::shared_ptr<State> state = state_;
    auto token = jobs_->Subscribe(id, [state](const JobStatus& s) {
      absl::MutexLock lock(&state->mu);
      if (state->reactor == nullptr) return;
      state->latest = s;
      state->reactor->MaybeWriteLocked();
    });
    if (!token.ok()) {
      Finish(ToGrpcStatus(token.status()));
      return;
    }
    token_ = *token;
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    state_->writing = false;
    if (!ok) {
      FinishLocked(grpc::Status::OK);
      return;
    }
    MaybeWriteLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    if (token_ != 0) jobs_->Unsubscribe(token_);
    {
      absl::MutexLock lock(&state_->mu);
      state_->reactor = nullptr;
    }
    delete this;
  }

 private:
  struct State {
    absl::Mutex mu;
    WatchReactor* reactor ABSL_GUARDED_BY(mu) = nullptr;
    std::optional<JobStatus> latest ABSL_GUARDED_BY(mu);
    uint64_t written_version ABSL_GUARDED_BY(mu) = 0;
    bool any_written ABSL_GUARDED_BY(mu) = false;
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
  };

  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (state_->writing || state_->finished || !state_->latest) return;
    const JobStatus& s = *state_->latest;
    if (state_->any_written && s.version == state_->written_version) {
      if (IsTerminal(s.state)) FinishLocked(grpc::Status::OK);
      return;
    }
    JobToProto(s, &out_);
    state_->written_version = s.version;
    state_->any_written = true;
    state_->writing = true;
    StartWrite(&out_);
  }

  void FinishLocked(const grpc::Status& st)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (state_->finished) return;
    state_->finished = true;
    Finish(st);
  }

  JobManager* const jobs_;
  std::shared_ptr<State> state_;
  uint64_t token_ = 0;
  v1::Job out_;
};

}  // namespace

void JobToProto(const JobStatus& s, v1::Job* out) {
  out->set_id(s.id);
  out->set_model(s.model);
  out->set_variant(s.variant);
  out->set_kind(s.kind);
  switch (s.state) {
    case JobState::kQueued:
      out->set_state(v1::JOB_QUEUED);
      break;
    case JobState::kRunning:
      out->set_state(v1::JOB_RUNNING);
      break;
    case JobState::kSucceeded:
      out->set_state(v1::JOB_SUCCEEDED);
      break;
    case JobState::kFailed:
      out->set_state(v1::JOB_FAILED);
      break;
    case JobState::kCancelled:
      out->set_state(v1::JOB_CANCELLED);
      break;
    case JobState::kInterrupted:
      out->set_state(v1::JOB_INTERRUPTED);
      break;
  }
  out->set_stage(s.stage);
  out->set_done(s.done);
  out->set_total(s.total);
  out->set_percent(s.percent());
  const int64_t end = s.ended_unix_ms != 0 ? s.ended_unix_ms : NowUnixMs();
  out->set_elapsed_seconds((end - s.started_unix_ms) / 1000.0);
  out->set_message(s.message);
  out->set_created_unix_ms(s.created_unix_ms);
  out->set_ended_unix_ms(s.ended_unix_ms);
}

absl::StatusOr<QuantizeRequest> QuantizeRequestFromProto(
    const v1::QuantizeRequest& p) {
  QuantizeRequest r;
  r.model = p.model();
  QuantizeOptions& o = r.options;
  if (!p.mode().empty()) {
    auto mode = ParseQuantMode(p.mode());
    if (!mode.ok()) return mode.status();
    o.mode = *mode;
  }
  if (o.mode == QuantMode::kFp16) {
    return absl::UnimplementedError(
        "mode fp16 cannot run here: LibTorch 1.13 has no Half kernels for "
        "convolution or matrix multiply on CPU; use bf16 (half the weight "
        "bytes, computed in bfloat16) or int8");
  }
  // Each mode's variant has its own default name, so a model can carry
  // several side by side.
  switch (o.mode) {
    case QuantMode::kStatic:
      r.variant = "int8";
      break;
    case QuantMode::kDynamic:
      r.variant = "int8-dynamic";
      break;
    case QuantMode::kFp16:
      r.variant = "fp16";
      break;
    case QuantMode::kBf16:
      r.variant = "bf16";
      break;
  }
  if (!p.variant().empty()) r.variant = p.variant();
  if (!p.calibration_set().empty()) r.calibration_set = p.calibration_set();
  r.eval_set = p.eval_set();
  if (!p.method().empty()) {
    auto m = ParseRangeMethod(p.method());
    if (!m.ok()) return m.status();
    o.method = *m;
  }
  if (p.has_percentile()) {
    if (!(p.percentile() > 0 && p.percentile() <= 100)) {  // NaN too
      return absl::InvalidArgumentError("percentile must be in (0, 100]");
    }
    o.percentile = p.percentile();
  }
  o.per_channel_weights = !p.per_tensor_weights();
  o.fp32_modules.assign(p.fp32_modules().begin(), p.fp32_modules().end());
  if (p.has_max_samples()) {
    if (p.max_samples() <= 0) {
      return absl::InvalidArgumentError("max_samples must be positive");
    }
    o.max_calibration_samples = p.max_samples();
  }
  // Options are kept in the job's JSON record, which has no NaN or
  // infinity: refuse them here rather than lose the job on a restart.
  if (p.has_max_agreement_loss()) {
    if (!(p.max_agreement_loss() >= 0 && p.max_agreement_loss() <= 100)) {
      return absl::InvalidArgumentError(
          "max_agreement_loss must be in [0, 100] (percentage points)");
    }
    o.max_agreement_loss = p.max_agreement_loss();
  }
  if (p.has_max_accuracy_loss()) {
    if (!(p.max_accuracy_loss() >= 0 && p.max_accuracy_loss() <= 100)) {
      return absl::InvalidArgumentError(
          "max_accuracy_loss must be in [0, 100] (percentage points)");
    }
    o.max_accuracy_loss = p.max_accuracy_loss();
  }
  o.auto_fallback = p.auto_fallback();
  if (p.has_max_trials()) {
    if (p.max_trials() < 0 || p.max_trials() > 1000) {
      return absl::InvalidArgumentError("max_trials must be in [0, 1000]");
    }
    o.max_trials = p.max_trials();
  }
  if (p.has_time_limit_seconds()) {
    if (!(p.time_limit_seconds() > 0 && p.time_limit_seconds() <= 86400)) {
      return absl::InvalidArgumentError(
          "time_limit_seconds must be in (0, 86400]");
    }
    o.time_limit_seconds = p.time_limit_seconds();
  }
  return r;
}

absl::StatusOr<TensorSpec> SpecFromProto(const v1::TensorSpec& proto) {
  TensorSpec spec;
  spec.name = proto.name();
  auto dtype = ParseDataType(proto.datatype());
  if (!dtype.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor spec '", proto.name(), "': ", dtype.status().message()));
  }
  spec.dtype = *dtype;
  spec.shape.assign(proto.shape().begin(), proto.shape().end());
  absl::Status st = ValidateSpec(spec);
  if (!st.ok()) return st;
  return spec;
}

void ModelStatusToProto(const ModelStatus& s, v1::ModelInfo* out) {
  out->set_name(s.name);
  out->set_description(s.description);
  for (const auto& spec : s.signature.inputs) {
    SpecToProto(spec, out->add_inputs());
  }
  for (const auto& spec : s.signature.outputs) {
    SpecToProto(spec, out->add_outputs());
  }
  for (const VariantStatus& v : s.variants) {
    auto* vi = out->add_variants();
    vi->set_name(v.name);
    vi->set_state(StateToProto(v.state));
    vi->set_serialized_bytes(v.serialized_bytes);
    vi->set_parameter_bytes(v.parameter_bytes);
    vi->set_sha256(v.sha256);
    vi->set_created_unix_ms(v.created_unix_ms);
    vi->set_last_error(v.last_error);
    vi->set_pending(v.pending);
    vi->set_execution_path(v.execution_path);
    BatchingToProto(v.batching, vi->mutable_batching());
  }
  BatchingToProto(s.batching.defaults, out->mutable_batching());
  out->set_created_unix_ms(s.created_unix_ms);
  out->set_updated_unix_ms(s.updated_unix_ms);
  out->set_state(StateToProto(s.state));
  out->set_last_error(s.last_error);
  out->set_generation(s.generation);
}

ManagementService::ManagementService(ServerCore* core)
    : core_(core), slow_work_(std::make_unique<ThreadPool>("manage", 2)) {}

ManagementService::~ManagementService() = default;

grpc::ServerReadReactor<v1::RegisterModelRequest>*
ManagementService::RegisterModel(CallbackServerContext* ctx,
                                 v1::RegisterModelResponse* response) {
  return new RegisterReactor(core_, slow_work_.get(), ctx, response);
}

ServerUnaryReactor* ManagementService::UnregisterModel(
    CallbackServerContext* ctx, const v1::UnregisterModelRequest* request,
    v1::UnregisterModelResponse*) {
  return Done(ctx, core_->registry()->Unregister(request->name()));
}

ServerUnaryReactor* ManagementService::ListModels(
    CallbackServerContext* ctx, const v1::ListModelsRequest*,
    v1::ListModelsResponse* response) {
  for (const ModelStatus& m : core_->registry()->List()) {
    ModelStatusToProto(m, response->add_models());
  }
  return Done(ctx, absl::OkStatus());
}

grpc::ServerReadReactor<v1::UploadCalibrationRequest>*
ManagementService::UploadCalibration(CallbackServerContext* ctx,
                                     v1::CalibrationSetInfo* response) {
  return new CalibrationReactor(core_, slow_work_.get(), ctx, response);
}

ServerUnaryReactor* ManagementService::ListCalibrationSets(
    CallbackServerContext* ctx, const v1::ListCalibrationSetsRequest* request,
    v1::ListCalibrationSetsResponse* response) {
  auto sets = core_->quantization()->ListSets(request->model());
  if (sets.ok()) {
    for (const CalibrationInfo& c : *sets) {
      auto* out = response->add_sets();
      out->set_model(c.model);
      out->set_name(c.name);
      out->set_samples(c.samples);
      out->set_bytes(c.bytes);
      out->set_labels(c.labels);
      out->set_created_unix_ms(c.created_unix_ms);
    }
  }
  return Done(ctx, sets.status());
}

ServerUnaryReactor* ManagementService::DeleteCalibrationSet(
    CallbackServerContext* ctx, const v1::DeleteCalibrationSetRequest* request,
    v1::DeleteCalibrationSetResponse*) {
  return Done(
      ctx, core_->quantization()->DeleteSet(request->model(), request->set()));
}

ServerUnaryReactor* ManagementService::Quantize(
    CallbackServerContext* ctx, const v1::QuantizeRequest* request,
    v1::Job* response) {
  auto req = QuantizeRequestFromProto(*request);
  if (!req.ok()) return Done(ctx, req.status());
  auto job = core_->quantization()->StartQuantize(*req);
  if (job.ok()) JobToProto(*job, response);
  return Done(ctx, job.status());
}

ServerUnaryReactor* ManagementService::GetJob(CallbackServerContext* ctx,
                                              const v1::GetJobRequest* request,
                                              v1::Job* response) {
  auto job = core_->quantization()->jobs()->Get(request->id());
  if (job.ok()) JobToProto(*job, response);
  return Done(ctx, job.status());
}

grpc::ServerWriteReactor<v1::Job>* ManagementService::WatchJob(
    CallbackServerContext*, const v1::GetJobRequest* request) {
  return new WatchReactor(core_->quantization()->jobs(), request->id());
}

ServerUnaryReactor* ManagementService::ListJobs(
    CallbackServerContext* ctx, const v1::ListJobsRequest* request,
    v1::ListJobsResponse* response) {
  for (const JobStatus& j :
       core_->quantization()->jobs()->List(request->model())) {
    JobToProto(j, response->add_jobs());
  }
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* ManagementService::CancelJob(
    CallbackServerContext* ctx, const v1::GetJobRequest* request,
    v1::Job* response) {
  auto job = core_->quantization()->jobs()->Cancel(request->id());
  if (job.ok()) JobToProto(*job, response);
  return Done(ctx, job.status());
}

ServerUnaryReactor* ManagementService::GetQuantizationReport(
    CallbackServerContext* ctx, const v1::GetQuantizationReportRequest* request,
    v1::QuantizationReport* out) {
  const std::string variant =
      request->variant().empty() ? "int8" : request->variant();
  auto r = core_->quantization()->GetReport(request->model(), variant);
  if (r.ok()) {
    out->set_model(request->model());
    out->set_variant(variant);
    out->set_mode(r->mode);
    out->set_method(r->method);
    out->set_percentile(r->percentile);
    out->set_per_channel_weights(r->per_channel_weights);
    out->set_calibration_samples(r->calibration_samples);
    out->set_eval_samples(r->eval_samples);
    for (const LayerReport& l : r->layers) {
      auto* lr = out->add_layers();
      lr->set_name(l.name);
      lr->set_is_weight(l.is_weight);
      lr->set_sqnr_db(l.sqnr_db);
      lr->set_quantized(l.quantized);
    }
    for (const auto& m : r->fp32_modules) out->add_fp32_modules(m);
    for (const auto& m : r->fallback_log) out->add_fallback_log(m);
    out->set_trials(r->trials);
    out->set_criterion_met(r->criterion_met);
    out->set_top1_agreement(r->top1_agreement);
    out->set_cosine_mean(r->cosine_mean);
    out->set_max_abs_error(r->max_abs_error);
    out->set_mean_abs_error(r->mean_abs_error);
    out->set_fp32_accuracy(r->fp32_accuracy);
    out->set_int8_accuracy(r->int8_accuracy);
    out->set_fp32_serialized_bytes(r->fp32_serialized_bytes);
    out->set_int8_serialized_bytes(r->int8_serialized_bytes);
    out->set_fp32_parameter_bytes(r->fp32_parameter_bytes);
    out->set_int8_parameter_bytes(r->int8_parameter_bytes);
    out->set_fp32_latency_ms_b1(r->fp32_latency_ms_b1);
    out->set_int8_latency_ms_b1(r->int8_latency_ms_b1);
    out->set_fp32_latency_ms_b32(r->fp32_latency_ms_b32);
    out->set_int8_latency_ms_b32(r->int8_latency_ms_b32);
    out->set_duration_seconds(r->duration_seconds);
  }
  return Done(ctx, r.status());
}

namespace {

void PolicyToProto(const TrafficPolicy& p, v1::TrafficPolicy* out) {
  out->set_kind(PolicyKindName(p.kind));
  out->set_baseline(p.baseline);
  for (const auto& [v, w] : p.weights) (*out->mutable_weights())[v] = w;
  out->set_candidate(p.candidate);
  if (p.kind == PolicyKind::kShadow)
    out->set_shadow_fraction(p.shadow_fraction);
  out->set_version(p.version);
  out->set_updated_unix_ms(p.updated_unix_ms);
  out->set_author(p.author);
  out->set_reason(p.reason);
}

absl::StatusOr<TrafficPolicy> PolicyFromProto(const v1::TrafficPolicy& in) {
  TrafficPolicy p;
  if (!in.kind().empty()) {
    auto kind = ParsePolicyKind(in.kind());
    if (!kind.ok()) return kind.status();
    p.kind = *kind;
  }
  if (!in.baseline().empty()) p.baseline = in.baseline();
  for (const auto& [v, w] : in.weights()) p.weights[v] = w;
  p.candidate = in.candidate();
  if (in.has_shadow_fraction()) p.shadow_fraction = in.shadow_fraction();
  p.steps.assign(in.steps().begin(), in.steps().end());
  p.stage = in.stage();
  if (in.has_min_requests()) p.min_requests = in.min_requests();
  if (in.has_min_seconds()) p.min_seconds = in.min_seconds();
  if (in.has_compare_fraction()) p.compare_fraction = in.compare_fraction();
  if (in.has_max_disagreement()) {
    p.guards.max_disagreement = in.max_disagreement();
  }
  if (in.has_min_cosine()) p.guards.min_cosine = in.min_cosine();
  if (in.has_max_error_rate()) p.guards.max_error_rate = in.max_error_rate();
  if (in.has_max_p99_ratio()) p.guards.max_p99_ratio = in.max_p99_ratio();
  if (in.has_min_samples()) p.guards.min_samples = in.min_samples();
  return p;
}

ServerUnaryReactor* PolicyDone(CallbackServerContext* ctx,
                               const absl::StatusOr<TrafficPolicy>& p,
                               v1::TrafficPolicy* out) {
  if (p.ok()) PolicyToProto(*p, out);
  return Done(ctx, p.status());
}

std::string Actor(const std::string& author) {
  return author.empty() ? "operator" : author;
}

}  // namespace

ServerUnaryReactor* ManagementService::SetBatching(
    CallbackServerContext* ctx, const v1::SetBatchingRequest* request,
    v1::ModelInfo* response) {
  auto set = core_->registry()->SetBatching(
      request->model(), request->variant(),
      BatchingFromProto(request->config()), request->clear());
  if (!set.ok()) return Done(ctx, set.status());
  auto status = core_->registry()->Get(request->model());
  if (status.ok()) ModelStatusToProto(*status, response);
  return Done(ctx, status.status());
}

ServerUnaryReactor* ManagementService::SetTrafficPolicy(
    CallbackServerContext* ctx, const v1::SetTrafficPolicyRequest* request,
    v1::TrafficPolicy* response) {
  auto policy = PolicyFromProto(request->policy());
  if (!policy.ok()) return Done(ctx, policy.status());
  return PolicyDone(
      ctx,
      core_->registry()->SetPolicy(request->model(), *policy, "set",
                                   Actor(request->author()), request->reason()),
      response);
}

ServerUnaryReactor* ManagementService::GetTrafficPolicy(
    CallbackServerContext* ctx, const v1::GetTrafficPolicyRequest* request,
    v1::TrafficPolicy* response) {
  return PolicyDone(ctx, core_->registry()->GetPolicy(request->model()),
                    response);
}

ServerUnaryReactor* ManagementService::Promote(
    CallbackServerContext* ctx, const v1::PromoteRequest* request,
    v1::TrafficPolicy* response) {
  return PolicyDone(
      ctx,
      core_->registry()->Promote(request->model(), request->variant(),
                                 Actor(request->author()), request->reason()),
      response);
}

ServerUnaryReactor* ManagementService::Rollback(
    CallbackServerContext* ctx, const v1::RollbackRequest* request,
    v1::TrafficPolicy* response) {
  return PolicyDone(
      ctx,
      core_->registry()->Rollback(request->model(), Actor(request->author()),
                                  request->reason()),
      response);
}

ServerUnaryReactor* ManagementService::GetModelStats(
    CallbackServerContext* ctx, const v1::GetModelStatsRequest* request,
    v1::ModelStats* response) {
  auto snap =
      SnapshotModel(*core_->registry(), core_->metrics(), request->model());
  if (snap.ok()) {
    response->set_model(snap->model);
    PolicyToProto(snap->policy, response->mutable_policy());
    response->set_unix_ms(snap->unix_ms);
    for (const VariantSnapshot& v : snap->variants) {
      auto* out = response->add_variants();
      out->set_variant(v.variant);
      out->set_ready(v.ready);
      out->set_requests(v.requests);
      out->set_errors(v.errors);
      out->set_latency_sum_seconds(v.latency_sum_seconds);
      for (double b : v.bucket_bounds) out->add_bucket_bounds(b);
      for (uint64_t c : v.bucket_counts) out->add_bucket_counts(c);
      out->set_traffic_share(v.traffic_share);
      out->set_shadow_runs(v.shadow_runs);
      out->set_shadow_drops(v.shadow_drops);
      out->set_top1_agreements(v.top1_agreements);
      out->set_top1_disagreements(v.top1_disagreements);
      out->set_cosine_sum(v.cosine_sum);
      out->set_cosine_count(v.cosine_count);
      out->set_max_abs_error_sum(v.max_abs_error_sum);
    }
  }
  return Done(ctx, snap.status());
}

ServerUnaryReactor* ManagementService::PolicyHistory(
    CallbackServerContext* ctx, const v1::PolicyHistoryRequest* request,
    v1::PolicyHistoryResponse* response) {
  auto history = core_->registry()->PolicyHistory(request->model());
  if (history.ok()) {
    for (const PolicyChange& c : *history) {
      auto* out = response->add_changes();
      out->set_version(c.version);
      out->set_unix_ms(c.unix_ms);
      out->set_action(c.action);
      out->set_actor(c.actor);
      out->set_reason(c.reason);
      PolicyToProto(c.policy, out->mutable_policy());
    }
  }
  return Done(ctx, history.status());
}

ServerUnaryReactor* ManagementService::GetModel(
    CallbackServerContext* ctx, const v1::GetModelRequest* request,
    v1::ModelInfo* response) {
  auto status = core_->registry()->Get(request->name());
  if (status.ok()) ModelStatusToProto(*status, response);
  return Done(ctx, status.status());
}

}  // namespace twinserve
