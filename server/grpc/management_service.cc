#include "server/grpc/management_service.h"

#include "proto/grpc_status_util.h"
#include "server/core/model_stats.h"
#include "server/grpc/management_convert.h"
#include "server/grpc/management_reactors.h"

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

ServerUnaryReactor* PolicyDone(CallbackServerContext* ctx,
                               const absl::StatusOr<TrafficPolicy>& p,
                               v1::TrafficPolicy* out) {
  if (p.ok()) PolicyToProto(*p, out);
  return Done(ctx, p.status());
}

PolicyChangeBy By(const std::string& author, const std::string& reason,
                  bool has_expected, uint64_t expected) {
  PolicyChangeBy by;
  by.actor = author.empty() ? "operator" : author;
  by.reason = reason;
  if (has_expected) by.expected_version = expected;
  return by;
}

}  // namespace

ManagementService::ManagementService(ServerCore* core)
    : core_(core), slow_work_(std::make_unique<ThreadPool>("manage", 2)) {}

ManagementService::~ManagementService() = default;

grpc::ServerReadReactor<v1::RegisterModelRequest>*
ManagementService::RegisterModel(CallbackServerContext* ctx,
                                 v1::RegisterModelResponse* response) {
  return NewRegisterReactor(core_, slow_work_.get(), ctx, response);
}

ServerUnaryReactor* ManagementService::UnregisterModel(
    CallbackServerContext* ctx, const v1::UnregisterModelRequest* request,
    v1::UnregisterModelResponse*) {
  return Done(ctx, core_->registrar()->Unregister(request->name()));
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

grpc::ServerReadReactor<v1::UploadCalibrationRequest>*
ManagementService::UploadCalibration(CallbackServerContext* ctx,
                                     v1::CalibrationSetInfo* response) {
  return NewCalibrationReactor(core_, slow_work_.get(), ctx, response);
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
  auto job = core_->jobs()->Get(request->id());
  if (job.ok()) JobToProto(*job, response);
  return Done(ctx, job.status());
}

grpc::ServerWriteReactor<v1::Job>* ManagementService::WatchJob(
    CallbackServerContext*, const v1::GetJobRequest* request) {
  return NewWatchReactor(core_->jobs(), request->id());
}

ServerUnaryReactor* ManagementService::ListJobs(
    CallbackServerContext* ctx, const v1::ListJobsRequest* request,
    v1::ListJobsResponse* response) {
  for (const JobStatus& j : core_->jobs()->List(request->model())) {
    JobToProto(j, response->add_jobs());
  }
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* ManagementService::CancelJob(
    CallbackServerContext* ctx, const v1::GetJobRequest* request,
    v1::Job* response) {
  auto job = core_->jobs()->Cancel(request->id());
  if (job.ok()) JobToProto(*job, response);
  return Done(ctx, job.status());
}

ServerUnaryReactor* ManagementService::GetQuantizationReport(
    CallbackServerContext* ctx, const v1::GetQuantizationReportRequest* request,
    v1::QuantizationReport* out) {
  const std::string variant =
      request->variant().empty() ? "int8" : request->variant();
  auto r = core_->quantization()->GetReport(request->model(), variant);
  if (r.ok()) ReportToProto(request->model(), variant, *r, out);
  return Done(ctx, r.status());
}

ServerUnaryReactor* ManagementService::SetTrafficPolicy(
    CallbackServerContext* ctx, const v1::SetTrafficPolicyRequest* request,
    v1::TrafficPolicy* response) {
  auto policy = PolicyFromProto(request->policy());
  if (!policy.ok()) return Done(ctx, policy.status());
  return PolicyDone(
      ctx,
      core_->traffic()->SetPolicy(
          request->model(), *policy,
          By(request->author(), request->reason(),
             request->has_expected_version(), request->expected_version())),
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
      core_->traffic()->Promote(
          request->model(), request->variant(),
          By(request->author(), request->reason(),
             request->has_expected_version(), request->expected_version())),
      response);
}

ServerUnaryReactor* ManagementService::Rollback(
    CallbackServerContext* ctx, const v1::RollbackRequest* request,
    v1::TrafficPolicy* response) {
  return PolicyDone(
      ctx,
      core_->traffic()->Rollback(
          request->model(),
          By(request->author(), request->reason(),
             request->has_expected_version(), request->expected_version())),
      response);
}

ServerUnaryReactor* ManagementService::PolicyHistory(
    CallbackServerContext* ctx, const v1::PolicyHistoryRequest* request,
    v1::PolicyHistoryResponse* response) {
  auto history = core_->registry()->PolicyHistory(request->model());
  if (history.ok()) {
    for (const PolicyChange& c : *history) {
      PolicyChangeToProto(c, response->add_changes());
    }
  }
  return Done(ctx, history.status());
}

ServerUnaryReactor* ManagementService::SetBatching(
    CallbackServerContext* ctx, const v1::SetBatchingRequest* request,
    v1::ModelInfo* response) {
  auto set = core_->traffic()->SetBatching(request->model(), request->variant(),
                                           BatchingFromProto(request->config()),
                                           request->clear());
  if (!set.ok()) return Done(ctx, set.status());
  auto status = core_->registry()->Get(request->model());
  if (status.ok()) ModelStatusToProto(*status, response);
  return Done(ctx, status.status());
}

ServerUnaryReactor* ManagementService::GetModelStats(
    CallbackServerContext* ctx, const v1::GetModelStatsRequest* request,
    v1::ModelStats* response) {
  auto snap = SnapshotModel(*core_->registry(), request->model());
  if (snap.ok()) ModelSnapshotToProto(*snap, response);
  return Done(ctx, snap.status());
}

}  // namespace twinserve
