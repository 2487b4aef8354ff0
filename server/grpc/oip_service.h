// The Open Inference Protocol service (inference.GRPCInferenceService) over
// ServerCore, on gRPC's callback API. It translates and delegates; requests
// run on the core's inference workers (or, for tiny models, inline: see
// EngineOptions::inline_compute_us). ModelInfer's request and response live
// on a per-call protobuf arena. System shared memory regions (Triton's
// extension) are registered here and live as long as the service.
#ifndef TWINSERVE_SERVER_GRPC_OIP_SERVICE_H_
#define TWINSERVE_SERVER_GRPC_OIP_SERVICE_H_

#include "proto/grpc_service.grpc.pb.h"
#include "server/core/server_core.h"
#include "server/grpc/arena_allocator.h"
#include "server/grpc/auth.h"
#include "server/grpc/shared_memory.h"

namespace twinserve {

inline constexpr char kServerName[] = "twinserve";
inline constexpr char kServerVersion[] = "0.1.0";

struct OipServiceOptions {
  // Triton's system shared memory extension maps shm objects the server's
  // user can open, so it is off unless the operator turns it on, and then
  // only for keys under the prefix.
  bool shared_memory = false;
  std::string shared_memory_key_prefix = "/twinserve_";
  // Requests of one ModelStreamInfer stream computing at once; past it they
  // are answered RESOURCE_EXHAUSTED. Also the answers a stream may have
  // waiting for a client that does not read before reading pauses.
  int max_stream_in_flight = 64;
};

class OipService final
    : public inference::GRPCInferenceService::CallbackService {
 public:
  // `core` and `auth` (null: no authentication) must outlive the service.
  explicit OipService(ServerCore* core, OipServiceOptions options = {},
                      const CallAuth* auth = nullptr)
      : core_(core),
        options_(std::move(options)),
        auth_(auth != nullptr ? auth : &no_auth_),
        shm_(options_.shared_memory_key_prefix) {
    SetMessageAllocatorFor_ModelInfer(&infer_allocator_);
  }

  grpc::ServerUnaryReactor* ServerLive(
      grpc::CallbackServerContext* ctx, const inference::ServerLiveRequest*,
      inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(
      grpc::CallbackServerContext* ctx, const inference::ServerReadyRequest*,
      inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(
      grpc::CallbackServerContext* ctx,
      const inference::ModelReadyRequest* request,
      inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* ctx,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* ctx,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(
      grpc::CallbackServerContext* ctx,
      const inference::ModelConfigRequest* request,
      inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(
      grpc::CallbackServerContext* ctx,
      const inference::ModelInferRequest* request,
      inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest,
                          inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* ModelStatistics(
      grpc::CallbackServerContext* ctx,
      const inference::ModelStatisticsRequest* request,
      inference::ModelStatisticsResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryIndex(
      grpc::CallbackServerContext* ctx,
      const inference::RepositoryIndexRequest* request,
      inference::RepositoryIndexResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelLoad(
      grpc::CallbackServerContext* ctx,
      const inference::RepositoryModelLoadRequest* request,
      inference::RepositoryModelLoadResponse* response) override;
  grpc::ServerUnaryReactor* RepositoryModelUnload(
      grpc::CallbackServerContext* ctx,
      const inference::RepositoryModelUnloadRequest* request,
      inference::RepositoryModelUnloadResponse* response) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryStatus(
      grpc::CallbackServerContext* ctx,
      const inference::SystemSharedMemoryStatusRequest*,
      inference::SystemSharedMemoryStatusResponse*) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryRegister(
      grpc::CallbackServerContext* ctx,
      const inference::SystemSharedMemoryRegisterRequest*,
      inference::SystemSharedMemoryRegisterResponse*) override;
  grpc::ServerUnaryReactor* SystemSharedMemoryUnregister(
      grpc::CallbackServerContext* ctx,
      const inference::SystemSharedMemoryUnregisterRequest*,
      inference::SystemSharedMemoryUnregisterResponse*) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryStatus(
      grpc::CallbackServerContext* ctx,
      const inference::CudaSharedMemoryStatusRequest*,
      inference::CudaSharedMemoryStatusResponse*) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryRegister(
      grpc::CallbackServerContext* ctx,
      const inference::CudaSharedMemoryRegisterRequest*,
      inference::CudaSharedMemoryRegisterResponse*) override;
  grpc::ServerUnaryReactor* CudaSharedMemoryUnregister(
      grpc::CallbackServerContext* ctx,
      const inference::CudaSharedMemoryUnregisterRequest*,
      inference::CudaSharedMemoryUnregisterResponse*) override;
  grpc::ServerUnaryReactor* TraceSetting(
      grpc::CallbackServerContext* ctx, const inference::TraceSettingRequest*,
      inference::TraceSettingResponse*) override;
  grpc::ServerUnaryReactor* LogSettings(
      grpc::CallbackServerContext* ctx, const inference::LogSettingsRequest*,
      inference::LogSettingsResponse*) override;

 private:
  ServerCore* const core_;
  const OipServiceOptions options_;
  const CallAuth no_auth_;
  const CallAuth* const auth_;
  ArenaMessageAllocator<inference::ModelInferRequest,
                        inference::ModelInferResponse>
      infer_allocator_;
  SharedMemoryManager shm_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_OIP_SERVICE_H_
