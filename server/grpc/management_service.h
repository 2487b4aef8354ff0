// twinserve.v1.ModelService over ServerCore: registration (client-streamed
// upload), listing, inspection and removal of models, calibration sets,
// quantization jobs, traffic policies and batching. Each handler translates
// (server/grpc/management_convert.h), calls the core and maps the status;
// the streaming calls are reactors (server/grpc/management_reactors.h).
#ifndef TWINSERVE_SERVER_GRPC_MANAGEMENT_SERVICE_H_
#define TWINSERVE_SERVER_GRPC_MANAGEMENT_SERVICE_H_

#include <memory>

#include "proto/twinserve.grpc.pb.h"
#include "server/core/server_core.h"
#include "server/grpc/auth.h"
#include "server/grpc/management_reactors.h"
#include "server/serving/thread_pool.h"
#include "server/store/audit_log.h"

namespace twinserve {

class ManagementService final
    : public twinserve::v1::ModelService::CallbackService {
 public:
  // `core`, `auth` and `audit` must outlive the service. `auth` null: no
  // authentication; `audit` null: admin actions are not audited.
  explicit ManagementService(ServerCore* core, const CallAuth* auth = nullptr,
                             AuditLog* audit = nullptr);
  ~ManagementService() override;

  grpc::ServerReadReactor<v1::RegisterModelRequest>* RegisterModel(
      grpc::CallbackServerContext* ctx,
      v1::RegisterModelResponse* response) override;
  grpc::ServerUnaryReactor* UnregisterModel(
      grpc::CallbackServerContext* ctx,
      const v1::UnregisterModelRequest* request,
      v1::UnregisterModelResponse* response) override;
  grpc::ServerUnaryReactor* ListModels(
      grpc::CallbackServerContext* ctx, const v1::ListModelsRequest* request,
      v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* ctx,
                                     const v1::GetModelRequest* request,
                                     v1::ModelInfo* response) override;
  grpc::ServerReadReactor<v1::UploadCalibrationRequest>* UploadCalibration(
      grpc::CallbackServerContext* ctx,
      v1::CalibrationSetInfo* response) override;
  grpc::ServerUnaryReactor* ListCalibrationSets(
      grpc::CallbackServerContext* ctx,
      const v1::ListCalibrationSetsRequest* request,
      v1::ListCalibrationSetsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteCalibrationSet(
      grpc::CallbackServerContext* ctx,
      const v1::DeleteCalibrationSetRequest* request,
      v1::DeleteCalibrationSetResponse* response) override;
  grpc::ServerUnaryReactor* Quantize(grpc::CallbackServerContext* ctx,
                                     const v1::QuantizeRequest* request,
                                     v1::Job* response) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* request,
                                   v1::Job* response) override;
  grpc::ServerWriteReactor<v1::Job>* WatchJob(
      grpc::CallbackServerContext* ctx,
      const v1::GetJobRequest* request) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* request,
                                     v1::ListJobsResponse* response) override;
  grpc::ServerUnaryReactor* CancelJob(grpc::CallbackServerContext* ctx,
                                      const v1::GetJobRequest* request,
                                      v1::Job* response) override;
  grpc::ServerUnaryReactor* GetQuantizationReport(
      grpc::CallbackServerContext* ctx,
      const v1::GetQuantizationReportRequest* request,
      v1::QuantizationReport* response) override;
  grpc::ServerUnaryReactor* SetTrafficPolicy(
      grpc::CallbackServerContext* ctx,
      const v1::SetTrafficPolicyRequest* request,
      v1::TrafficPolicy* response) override;
  grpc::ServerUnaryReactor* GetTrafficPolicy(
      grpc::CallbackServerContext* ctx,
      const v1::GetTrafficPolicyRequest* request,
      v1::TrafficPolicy* response) override;
  grpc::ServerUnaryReactor* Promote(grpc::CallbackServerContext* ctx,
                                    const v1::PromoteRequest* request,
                                    v1::TrafficPolicy* response) override;
  grpc::ServerUnaryReactor* Rollback(grpc::CallbackServerContext* ctx,
                                     const v1::RollbackRequest* request,
                                     v1::TrafficPolicy* response) override;
  grpc::ServerUnaryReactor* SetBatching(grpc::CallbackServerContext* ctx,
                                        const v1::SetBatchingRequest* request,
                                        v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* GetModelStats(
      grpc::CallbackServerContext* ctx, const v1::GetModelStatsRequest* request,
      v1::ModelStats* response) override;
  grpc::ServerUnaryReactor* PolicyHistory(
      grpc::CallbackServerContext* ctx, const v1::PolicyHistoryRequest* request,
      v1::PolicyHistoryResponse* response) override;

 private:
  // The caller's principal if its role allows `role`; with `audited`, the
  // call's outcome (or the refusal) goes to the audit log when Done.
  absl::StatusOr<Principal> Allow(grpc::CallbackServerContext* ctx, Role role,
                                  const char* action, const std::string& target,
                                  bool audited);
  // The history's author: the principal when authenticated, else `asked`.
  std::string Author(const Principal& who, const std::string& asked) const;
  void Audit(const AuditEntry& e);
  AuditHook MakeAuditHook(const Principal& who);

  ServerCore* const core_;
  const CallAuth no_auth_;
  const CallAuth* const auth_;
  AuditLog* const audit_;
  // Model loads and checks take seconds: they run here, not on gRPC threads.
  std::unique_ptr<ThreadPool> slow_work_;
};

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_MANAGEMENT_SERVICE_H_
