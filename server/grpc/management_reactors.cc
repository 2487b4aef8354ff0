#include "server/grpc/management_reactors.h"

#include <atomic>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "proto/grpc_status_util.h"
#include "server/common/memory_budget.h"
#include "server/common/names.h"
#include "server/common/status_macros.h"
#include "server/grpc/management_convert.h"
#include "server/grpc/oip_codec.h"

namespace twinserve {
namespace {

using grpc::CallbackServerContext;

uint64_t TensorBytes(const std::vector<HostTensor>& tensors) {
  uint64_t n = 0;
  for (const HostTensor& t : tensors) n += t.byte_size;
  return n;
}

// Receives the upload, then hands registration to the slow-work pool.
class RegisterReactor
    : public grpc::ServerReadReactor<v1::RegisterModelRequest> {
 public:
  RegisterReactor(ServerCore* core, ThreadPool* pool,
                  CallbackServerContext* ctx, v1::RegisterModelResponse* resp,
                  std::string author, AuditHook audit)
      : core_(core),
        pool_(pool),
        ctx_(ctx),
        response_(resp),
        author_(std::move(author)),
        audit_(std::move(audit)) {
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
  void OnCancel() override { cancelled_ = true; }

 private:
  // Samples for set `name`, shaped by the header's declared inputs.
  absl::Status AppendSamples(const v1::CalibrationSamples& samples,
                             const std::string& name,
                             std::optional<CalibrationSet>* set) {
    if (!set->has_value()) {
      Signature signature;
      for (const auto& s : header_.inputs()) {
        auto spec = SpecFromProto(s);
        if (!spec.ok()) return spec.status();
        signature.inputs.push_back(*spec);
      }
      auto made = CalibrationSet::ForSignature(signature, name);
      if (!made.ok()) return made.status();
      set->emplace(std::move(*made));
    }
    auto tensors =
        DecodeTensors(samples.inputs(), samples.raw_input_contents());
    if (!tensors.ok()) return tensors.status();
    std::vector<int64_t> labels(samples.labels().begin(),
                                samples.labels().end());
    absl::Status st = reservation_.Grow(TensorBytes(*tensors));
    if (st.ok()) {
      st = (*set)->Append(*tensors, labels, core_->quantization()->limits());
    }
    if (!st.ok()) {
      return absl::Status(st.code(), absl::StrCat("the registration's ", name,
                                                  " samples: ", st.message(),
                                                  "; nothing was stored"));
    }
    return absl::OkStatus();
  }

  absl::Status Consume() {
    if (!have_header_) {
      if (!message_.has_header()) {
        return absl::InvalidArgumentError(
            "the first RegisterModel message must carry the header");
      }
      header_ = message_.header();
      have_header_ = true;
      absl::Status st = core_->registry()->CheckWritable();
      if (!st.ok()) return st;
      st = ValidateName(header_.name());
      if (!st.ok()) return st;
      // Before the upload: a full server refuses at once, not after 4 GB.
      st = core_->registrar()->CheckRoomForModel(header_.name());
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
    if (message_.has_calibration() || message_.has_evaluation()) {
      if (!header_.has_quantize()) {
        return absl::InvalidArgumentError(
            "RegisterModel carries samples only with header.quantize");
      }
      return message_.has_calibration()
                 ? AppendSamples(message_.calibration(), "calib", &calib_)
                 : AppendSamples(message_.evaluation(), "eval", &eval_);
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
      calib_.reset();
      eval_.reset();
      reservation_.Reset();  // before the answer: the client may go on
      Audit(st);
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
    if (header_.has_quantize() || header_.has_plan()) {
      if (!header_.variant().empty()) {
        return absl::InvalidArgumentError(
            "quantize and plan apply to a model's registration, not to a "
            "variant upload");
      }
      OneCallRegistration one;
      one.args = std::move(args);
      one.calib = std::move(calib_);
      one.eval = std::move(eval_);
      one.wait_for_variant = header_.wait_for_variant();
      if (header_.has_quantize()) {
        auto q = QuantizeRequestFromProto(header_.quantize());
        if (!q.ok()) return q.status();
        one.quantize = std::move(*q);
      }
      if (header_.has_plan()) {
        auto policy = PolicyFromProto(header_.plan());
        if (!policy.ok()) return policy.status();
        TrafficPlan plan;
        plan.policy = *policy;
        plan.author = header_.plan().author().empty() ? "registration"
                                                      : header_.plan().author();
        one.args.plan = plan;
      }
      auto result = core_->quantization()->RegisterAndQuantize(
          std::move(one), *staged, &cancelled_);
      if (!result.ok()) return result.status();
      ModelStatusToProto(result->model, response_->mutable_model());
      if (result->job.has_value()) {
        JobToProto(*result->job, response_->mutable_job());
      }
      return absl::OkStatus();
    }
    auto status = header_.variant().empty()
                      ? core_->registrar()->Register(args, *staged)
                      : core_->registrar()->RegisterVariant(
                            args.name, header_.variant(), *staged);
    if (!status.ok()) return status.status();
    ModelStatusToProto(*status, response_->mutable_model());
    return absl::OkStatus();
  }

  void Fail(const absl::Status& st) {
    upload_.reset();
    calib_.reset();
    eval_.reset();
    reservation_.Reset();
    Audit(st);
    Finish(ToGrpcStatus(st));
  }

  void Audit(const absl::Status& st) {
    if (audit_) {
      audit_("RegisterModel",
             header_.variant().empty()
                 ? header_.name()
                 : absl::StrCat(header_.name(), ":", header_.variant()),
             st);
    }
  }

  ServerCore* const core_;
  ThreadPool* const pool_;
  CallbackServerContext* const ctx_;
  v1::RegisterModelResponse* const response_;
  v1::RegisterModelRequest message_;
  v1::RegisterModelHeader header_;
  bool have_header_ = false;
  const std::string author_;
  const AuditHook audit_;
  std::unique_ptr<Upload> upload_;
  std::optional<CalibrationSet> calib_, eval_;
  MemoryReservation reservation_{core_->calibration_budget()};
  std::atomic<bool> cancelled_{false};
};

// Receives calibration samples into memory (bounded by the server's limits),
// then stores the set in one durable write when the stream ends.
class CalibrationReactor
    : public grpc::ServerReadReactor<v1::UploadCalibrationRequest> {
 public:
  CalibrationReactor(ServerCore* core, ThreadPool* pool,
                     CallbackServerContext* ctx, v1::CalibrationSetInfo* resp,
                     AuditHook audit)
      : core_(core),
        pool_(pool),
        ctx_(ctx),
        response_(resp),
        audit_(std::move(audit)) {
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      if (ctx_->IsCancelled()) {
        Done(absl::CancelledError(
            "the upload stream broke off; nothing was stored"));
        return;
      }
      if (!set_.has_value()) {
        Done(absl::InvalidArgumentError("UploadCalibration stream was empty"));
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
        Done(info.status());
      });
      return;
    }
    absl::Status st = Consume();
    if (!st.ok()) {
      Done(st);
      return;
    }
    StartRead(&message_);
  }

  void OnDone() override { delete this; }

  void Done(const absl::Status& st) {
    if (audit_) {
      audit_("UploadCalibration",
             absl::StrCat(header_.model(), "/",
                          header_.set().empty() ? "calib" : header_.set()),
             st);
    }
    set_.reset();
    reservation_.Reset();  // before the answer: the client may go on
    Finish(ToGrpcStatus(st));
  }

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
    TS_RETURN_IF_ERROR(reservation_.Grow(TensorBytes(*tensors)));
    return set_->Append(*tensors, labels, core_->quantization()->limits());
  }

  ServerCore* const core_;
  ThreadPool* const pool_;
  CallbackServerContext* const ctx_;
  v1::CalibrationSetInfo* const response_;
  v1::UploadCalibrationRequest message_;
  v1::CalibrationHeader header_;
  std::optional<CalibrationSet> set_;
  MemoryReservation reservation_{core_->calibration_budget()};
  const AuditHook audit_;
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
      // Never go back to an older status: a stale one kept as the latest
      // after the terminal one would leave the stream open forever.
      if (state->latest.has_value() && s.version <= state->latest->version) {
        return;
      }
      state->latest = s;
      state->reactor->state_->mu.AssertHeld();  // the same mutex as `state`'s
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

grpc::ServerReadReactor<v1::RegisterModelRequest>* NewRegisterReactor(
    ServerCore* core, ThreadPool* slow_work, CallbackServerContext* ctx,
    v1::RegisterModelResponse* response, std::string author, AuditHook audit) {
  return new RegisterReactor(core, slow_work, ctx, response, std::move(author),
                             std::move(audit));
}

grpc::ServerReadReactor<v1::UploadCalibrationRequest>* NewCalibrationReactor(
    ServerCore* core, ThreadPool* slow_work, CallbackServerContext* ctx,
    v1::CalibrationSetInfo* response, AuditHook audit) {
  return new CalibrationReactor(core, slow_work, ctx, response,
                                std::move(audit));
}

grpc::ServerWriteReactor<v1::Job>* NewWatchReactor(JobManager* jobs,
                                                   const std::string& id) {
  return new WatchReactor(jobs, id);
}

}  // namespace twinserve
