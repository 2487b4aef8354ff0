#include "server/grpc/oip_service.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "proto/grpc_status_util.h"
#include "server/common/clock.h"
#include "server/grpc/oip_codec.h"
#include "server/grpc/stream_infer_reactor.h"

namespace twinserve {
namespace {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

constexpr char kPlatform[] = "pytorch_libtorch";

ServerUnaryReactor* Done(CallbackServerContext* ctx,
                         const absl::Status& status) {
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

ServerUnaryReactor* Unimplemented(CallbackServerContext* ctx,
                                  const char* what) {
  return Done(ctx, absl::UnimplementedError(absl::StrCat(
                       what,
                       " is not supported by twinserve: it serves "
                       "tensors sent in the request on CPU only")));
}

inference::DataType ConfigType(DataType t) {
  switch (t) {
    case DataType::kBool:
      return inference::TYPE_BOOL;
    case DataType::kUint8:
      return inference::TYPE_UINT8;
    case DataType::kInt8:
      return inference::TYPE_INT8;
    case DataType::kInt16:
      return inference::TYPE_INT16;
    case DataType::kInt32:
      return inference::TYPE_INT32;
    case DataType::kInt64:
      return inference::TYPE_INT64;
    case DataType::kFp16:
      return inference::TYPE_FP16;
    case DataType::kBf16:
      return inference::TYPE_BF16;
    case DataType::kFp32:
      return inference::TYPE_FP32;
    case DataType::kFp64:
      return inference::TYPE_FP64;
    case DataType::kInvalid:
      break;
  }
  return inference::TYPE_INVALID;
}

void SetDuration(const DurationStat& d, inference::StatisticDuration* out) {
  out->set_count(d.count);
  out->set_ns(d.ns);
}

// A model must exist and, if a version is named, have that variant.
absl::StatusOr<ModelStatus> GetModelVersion(ModelRegistry* registry,
                                            const std::string& name,
                                            const std::string& version) {
  auto status = registry->Get(name);
  if (!status.ok() || version.empty()) return status;
  for (const VariantStatus& v : status->variants) {
    if (v.name == version) return status;
  }
  return absl::NotFoundError(
      absl::StrCat("model '", name, "' has no version '", version, "'"));
}

// The batching settings a metadata or config request is about: the named
// version's, else the model's default.
const BatchingConfig& BatchingOf(const ModelStatus& status,
                                 const std::string& version) {
  for (const VariantStatus& v : status.variants) {
    if (v.name == version) return v.batching;
  }
  return status.batching.defaults;
}

// gRPC deadline -> steady-clock ns (0 = none).
uint64_t DeadlineNs(const CallbackServerContext* ctx) {
  const auto deadline = ctx->deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) return 0;
  const auto left = deadline - std::chrono::system_clock::now();
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  return std::max<int64_t>(
      1,
      std::chrono::duration_cast<std::chrono::nanoseconds>(now + left).count());
}

}  // namespace

ServerUnaryReactor* OipService::ServerLive(
    CallbackServerContext* ctx, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* OipService::ServerReady(
    CallbackServerContext* ctx, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(core_->ready());
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* OipService::ModelReady(
    CallbackServerContext* ctx, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  if (auto who = auth_->Check(ctx, Role::kInfer); !who.ok()) {
    return Done(ctx, who.status());
  }
  // As Triton: an unknown or unready model is "not ready", not an error.
  response->set_ready(
      core_->registry()->Acquire(request->name(), request->version(), "").ok());
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* OipService::ServerMetadata(
    CallbackServerContext* ctx, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  if (auto who = auth_->Check(ctx, Role::kInfer); !who.ok()) {
    return Done(ctx, who.status());
  }
  response->set_name(kServerName);
  response->set_version(kServerVersion);
  for (const char* ext : {"model_repository", "model_configuration",
                          "statistics", "parameters"}) {
    response->add_extensions(ext);
  }
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* OipService::ModelMetadata(
    CallbackServerContext* ctx, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  if (auto who = auth_->Check(ctx, Role::kInfer); !who.ok()) {
    return Done(ctx, who.status());
  }
  auto status =
      GetModelVersion(core_->registry(), request->name(), request->version());
  if (!status.ok()) return Done(ctx, status.status());
  response->set_name(status->name);
  response->set_platform(kPlatform);
  for (const VariantStatus& v : status->variants) {
    response->add_versions(v.name);
  }
  for (const TensorSpec& s : status->signature.inputs) {
    auto* t = response->add_inputs();
    t->set_name(s.name);
    t->set_datatype(DataTypeName(s.dtype));
    for (int64_t d : s.shape) t->add_shape(d);
  }
  for (const TensorSpec& s : status->signature.outputs) {
    auto* t = response->add_outputs();
    t->set_name(s.name);
    t->set_datatype(DataTypeName(s.dtype));
    for (int64_t d : s.shape) t->add_shape(d);
  }
  const BatchingConfig& b = BatchingOf(*status, request->version());
  auto& props = *response->mutable_properties();
  props["batchable"] =
      CheckBatchable(status->signature).ok() ? "true" : "false";
  props["dynamic_batching"] = b.enabled() ? "true" : "false";
  props["max_batch_size"] = absl::StrCat(b.max_batch_size);
  props["max_queue_delay_microseconds"] = absl::StrCat(b.max_queue_delay_us);
  props["preferred_batch_sizes"] = absl::StrJoin(b.preferred_batch_sizes, ",");
  props["queue_capacity"] = absl::StrCat(b.queue_capacity);
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* OipService::ModelConfig(
    CallbackServerContext* ctx, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  if (auto who = auth_->Check(ctx, Role::kInfer); !who.ok()) {
    return Done(ctx, who.status());
  }
  auto status =
      GetModelVersion(core_->registry(), request->name(), request->version());
  if (!status.ok()) return Done(ctx, status.status());
  auto* config = response->mutable_config();
  config->set_name(status->name);
  config->set_platform(kPlatform);
  config->set_backend("pytorch");
  // As Triton: with batching, max_batch_size > 0 and dims leave out the
  // batch dim; without, max_batch_size 0 and shapes are given in full, as
  // the registration declared them.
  const BatchingConfig& b = BatchingOf(*status, request->version());
  const size_t skip = b.enabled() ? 1 : 0;
  config->set_max_batch_size(b.enabled() ? b.max_batch_size : 0);
  if (b.enabled()) {
    auto* db = config->mutable_dynamic_batching();
    for (int p : b.preferred_batch_sizes) db->add_preferred_batch_size(p);
    db->set_max_queue_delay_microseconds(b.max_queue_delay_us);
    db->mutable_default_queue_policy()->set_max_queue_size(b.queue_capacity);
  }
  for (const TensorSpec& s : status->signature.inputs) {
    auto* in = config->add_input();
    in->set_name(s.name);
    in->set_data_type(ConfigType(s.dtype));
    for (size_t i = skip; i < s.shape.size(); ++i) in->add_dims(s.shape[i]);
  }
  for (const TensorSpec& s : status->signature.outputs) {
    auto* out = config->add_output();
    out->set_name(s.name);
    out->set_data_type(ConfigType(s.dtype));
    for (size_t i = skip; i < s.shape.size(); ++i) out->add_dims(s.shape[i]);
  }
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* OipService::ModelInfer(
    CallbackServerContext* ctx, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  auto who = auth_->Check(ctx, Role::kInfer);
  if (!who.ok()) return Done(ctx, who.status());
  const uint64_t start = NowNs();
  ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::shared_ptr<SharedMemoryUse> shm;  // set only if the request uses it
  const SharedMemoryScope scope(&shm_, std::move(who->name));
  auto decoded = DecodeInferRequest(*request, &scope, &shm);
  if (!decoded.ok()) {
    reactor->Finish(ToGrpcStatus(decoded.status()));
    return reactor;
  }
  // The earlier of the gRPC deadline and the request's timeout parameter.
  if (const uint64_t grpc_deadline = DeadlineNs(ctx);
      grpc_deadline != 0 &&
      (decoded->deadline_ns == 0 || grpc_deadline < decoded->deadline_ns)) {
    decoded->deadline_ns = grpc_deadline;
  }
  const bool timings = !request->parameters().empty() &&
                       request->parameters().count(kTimingsParameter) > 0;
  const uint64_t decoded_at = timings ? NowNs() : 0;
  core_->engine()->Infer(
      std::move(*decoded),
      [request, response, reactor, shm = std::move(shm), timings, start,
       decoded_at](absl::StatusOr<InferResult> result) {
        if (!result.ok()) {
          reactor->Finish(ToGrpcStatus(result.status()));
          return;
        }
        const uint64_t answered_at = timings ? NowNs() : 0;
        absl::Status st =
            EncodeInferResponse(*request, *result, response, shm.get());
        if (timings && st.ok()) {
          auto& params = *response->mutable_parameters();
          params[kDecodeNsParameter].set_int64_param(decoded_at - start);
          params[kEngineNsParameter].set_int64_param(answered_at - decoded_at);
          params[kEncodeNsParameter].set_int64_param(NowNs() - answered_at);
        }
        reactor->Finish(ToGrpcStatus(st));
      });
  return reactor;
}

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
OipService::ModelStreamInfer(CallbackServerContext* ctx) {
  auto who = auth_->Check(ctx, Role::kInfer);
  if (!who.ok()) {
    return new RefusedStream<inference::ModelInferRequest,
                             inference::ModelStreamInferResponse>(
        ToGrpcStatus(who.status()));
  }
  return NewStreamInferReactor(core_->engine(),
                               SharedMemoryScope(&shm_, std::move(who->name)),
                               options_.max_stream_in_flight);
}

ServerUnaryReactor* OipService::ModelStatistics(
    CallbackServerContext* ctx,
    const inference::ModelStatisticsRequest* request,
    inference::ModelStatisticsResponse* response) {
  if (auto who = auth_->Check(ctx, Role::kInfer); !who.ok()) {
    return Done(ctx, who.status());
  }
  if (!request->name().empty()) {
    auto status =
        GetModelVersion(core_->registry(), request->name(), request->version());
    if (!status.ok()) return Done(ctx, status.status());
  }
  for (const auto& e :
       core_->registry()->Stats(request->name(), request->version())) {
    auto* m = response->add_model_stats();
    m->set_name(e.model);
    m->set_version(e.variant);
    m->set_last_inference(e.stats.last_inference_ms);
    m->set_inference_count(e.stats.inference_count);
    m->set_execution_count(e.stats.execution_count);
    auto* s = m->mutable_inference_stats();
    SetDuration(e.stats.success, s->mutable_success());
    SetDuration(e.stats.fail, s->mutable_fail());
    SetDuration(e.stats.queue, s->mutable_queue());
    SetDuration(e.stats.compute_input, s->mutable_compute_input());
    SetDuration(e.stats.compute_infer, s->mutable_compute_infer());
    SetDuration(e.stats.compute_output, s->mutable_compute_output());
    for (const auto& [size, b] : e.stats.batches) {
      auto* bs = m->add_batch_stats();
      bs->set_batch_size(size);
      SetDuration(b.compute_input, bs->mutable_compute_input());
      SetDuration(b.compute_infer, bs->mutable_compute_infer());
      SetDuration(b.compute_output, bs->mutable_compute_output());
    }
  }
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* OipService::RepositoryIndex(
    CallbackServerContext* ctx,
    const inference::RepositoryIndexRequest* request,
    inference::RepositoryIndexResponse* response) {
  if (auto who = auth_->Check(ctx, Role::kAdmin); !who.ok()) {
    return Done(ctx, who.status());
  }
  for (const ModelStatus& m : core_->registry()->List()) {
    if (m.variants.empty()) {  // a broken store entry
      if (request->ready()) continue;
      auto* idx = response->add_models();
      idx->set_name(m.name);
      idx->set_state("UNAVAILABLE");
      idx->set_reason(m.last_error);
      continue;
    }
    for (const VariantStatus& v : m.variants) {
      const bool ready = v.state == VariantState::kReady;
      if (request->ready() && !ready) continue;
      auto* idx = response->add_models();
      idx->set_name(m.name);
      idx->set_version(v.name);
      idx->set_state(ready ? "READY" : VariantStateName(v.state));
      idx->set_reason(v.last_error);
    }
  }
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* OipService::RepositoryModelLoad(
    CallbackServerContext* ctx,
    const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  if (auto who = auth_->Check(ctx, Role::kAdmin); !who.ok()) {
    return Done(ctx, who.status());
  }
  if (!request->parameters().empty()) {
    return Done(ctx, absl::InvalidArgumentError(
                         "RepositoryModelLoad parameters (config override, "
                         "file upload) are not supported; register models "
                         "with twinserve.v1.ModelService/RegisterModel"));
  }
  // Loading can take seconds; this runs on a gRPC callback thread, which is
  // acceptable for a rare operator call.
  return Done(ctx, core_->registry()->Load(request->model_name()));
}

ServerUnaryReactor* OipService::RepositoryModelUnload(
    CallbackServerContext* ctx,
    const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  if (auto who = auth_->Check(ctx, Role::kAdmin); !who.ok()) {
    return Done(ctx, who.status());
  }
  return Done(ctx, core_->registry()->Unload(request->model_name()));
}

ServerUnaryReactor* OipService::SystemSharedMemoryStatus(
    CallbackServerContext* ctx,
    const inference::SystemSharedMemoryStatusRequest* request,
    inference::SystemSharedMemoryStatusResponse* response) {
  auto who = auth_->Check(ctx, Role::kAdmin);
  if (!who.ok()) return Done(ctx, who.status());
  auto regions = shm_.Status(who->name, request->name());
  if (!regions.ok()) return Done(ctx, regions.status());
  for (const SharedMemoryRegionInfo& r : *regions) {
    auto& out = (*response->mutable_regions())[r.name];
    out.set_name(r.name);
    out.set_key(r.key);
    out.set_offset(r.offset);
    out.set_byte_size(r.byte_size);
  }
  return Done(ctx, absl::OkStatus());
}
ServerUnaryReactor* OipService::SystemSharedMemoryRegister(
    CallbackServerContext* ctx,
    const inference::SystemSharedMemoryRegisterRequest* request,
    inference::SystemSharedMemoryRegisterResponse*) {
  auto who = auth_->Check(ctx, Role::kAdmin);
  if (!who.ok()) return Done(ctx, who.status());
  if (!options_.shared_memory) {
    return Done(ctx, absl::PermissionDeniedError(
                         "shared memory is turned off on this server (start "
                         "it with --shared_memory to allow it)"));
  }
  return Done(ctx, shm_.Register({who->name, request->name(), request->key(),
                                  request->offset(), request->byte_size()}));
}
ServerUnaryReactor* OipService::SystemSharedMemoryUnregister(
    CallbackServerContext* ctx,
    const inference::SystemSharedMemoryUnregisterRequest* request,
    inference::SystemSharedMemoryUnregisterResponse*) {
  auto who = auth_->Check(ctx, Role::kAdmin);
  if (!who.ok()) return Done(ctx, who.status());
  shm_.Unregister(who->name, request->name());
  return Done(ctx, absl::OkStatus());
}
ServerUnaryReactor* OipService::CudaSharedMemoryStatus(
    CallbackServerContext* ctx, const inference::CudaSharedMemoryStatusRequest*,
    inference::CudaSharedMemoryStatusResponse*) {
  if (auto who = auth_->Check(ctx, Role::kAdmin); !who.ok()) {
    return Done(ctx, who.status());
  }
  return Unimplemented(ctx, "CUDA shared memory");
}
ServerUnaryReactor* OipService::CudaSharedMemoryRegister(
    CallbackServerContext* ctx,
    const inference::CudaSharedMemoryRegisterRequest*,
    inference::CudaSharedMemoryRegisterResponse*) {
  if (auto who = auth_->Check(ctx, Role::kAdmin); !who.ok()) {
    return Done(ctx, who.status());
  }
  return Unimplemented(ctx, "CUDA shared memory");
}
ServerUnaryReactor* OipService::CudaSharedMemoryUnregister(
    CallbackServerContext* ctx,
    const inference::CudaSharedMemoryUnregisterRequest*,
    inference::CudaSharedMemoryUnregisterResponse*) {
  if (auto who = auth_->Check(ctx, Role::kAdmin); !who.ok()) {
    return Done(ctx, who.status());
  }
  return Unimplemented(ctx, "CUDA shared memory");
}
ServerUnaryReactor* OipService::TraceSetting(
    CallbackServerContext* ctx, const inference::TraceSettingRequest*,
    inference::TraceSettingResponse*) {
  if (auto who = auth_->Check(ctx, Role::kAdmin); !who.ok()) {
    return Done(ctx, who.status());
  }
  return Done(ctx, absl::UnimplementedError(
                       "Trace settings are not supported by twinserve; use "
                       "the Prometheus metrics and ModelStatistics"));
}
ServerUnaryReactor* OipService::LogSettings(
    CallbackServerContext* ctx, const inference::LogSettingsRequest*,
    inference::LogSettingsResponse*) {
  if (auto who = auth_->Check(ctx, Role::kAdmin); !who.ok()) {
    return Done(ctx, who.status());
  }
  return Done(ctx, absl::UnimplementedError(
                       "Log settings cannot be changed over RPC; start "
                       "twinserve with --log_level"));
}

}  // namespace twinserve
