#include "server/grpc/management_service.h"

#include "absl/strings/str_cat.h"
#include "server/core/logging.h"
#include "server/grpc/grpc_status_util.h"

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
    args.description = header_.description();
    args.replace = header_.replace();
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
    auto status = core_->registry()->Register(args, *staged);
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

}  // namespace

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
  }
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

ServerUnaryReactor* ManagementService::GetModel(
    CallbackServerContext* ctx, const v1::GetModelRequest* request,
    v1::ModelInfo* response) {
  auto status = core_->registry()->Get(request->name());
  if (status.ok()) ModelStatusToProto(*status, response);
  return Done(ctx, status.status());
}

}  // namespace twinserve
