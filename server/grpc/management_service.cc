#include "server/grpc/management_service.h"

#include <optional>

#include "proto/grpc_status_util.h"
#include "server/common/logging.h"
#include "server/core/model_stats.h"
#include "server/grpc/management_convert.h"
#include "server/grpc/management_reactors.h"

namespace twinserve {
namespace {

using grpc::CallbackServerContext;
using grpc::ServerUnaryReactor;

// The admin call this thread is handling, audited with its outcome by
// Done(): every management handler finishes its call before it returns, so
// the call and its outcome meet on one thread.
struct PendingAudit {
  AuditLog* log = nullptr;
  AuditEntry entry;
};
thread_local std::optional<PendingAudit> t_audit;

void RecordAudit(PendingAudit& a, const absl::Status& outcome) {
  a.entry.outcome = outcome;
  if (absl::Status st = a.log->Record(a.entry); !st.ok()) {
    TS_LOG(WARNING) << st;
  }
}

ServerUnaryReactor* Done(CallbackServerContext* ctx,
                         const absl::Status& status) {
  if (t_audit.has_value()) {
    RecordAudit(*t_audit, status);
    t_audit.reset();
  }
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

ManagementService::ManagementService(ServerCore* core, const CallAuth* auth,
                                     AuditLog* audit)
    : core_(core),
      auth_(auth != nullptr ? auth : &no_auth_),
      audit_(audit),
      slow_work_(std::make_unique<ThreadPool>("manage", 2)) {}

absl::StatusOr<Principal> ManagementService::Allow(CallbackServerContext* ctx,
                                                   Role role,
                                                   const char* action,
                                                   const std::string& target,
                                                   bool audited) {
  auto who = auth_->Check(ctx, role);
  if (audited && audit_ != nullptr) {
    PendingAudit a;
    a.log = audit_;
    a.entry.principal = who.ok() ? who->name : "(unauthenticated)";
    a.entry.action = action;
    a.entry.target = target;
    t_audit = std::move(a);
  }
  return who;
}

void ManagementService::Audit(const AuditEntry& e) {
  if (audit_ == nullptr) return;
  if (absl::Status st = audit_->Record(e); !st.ok()) {
    TS_LOG(WARNING) << st;
  }
}

AuditHook ManagementService::MakeAuditHook(const Principal& who) {
  if (audit_ == nullptr) return nullptr;
  AuditLog* log = audit_;
  const std::string name = who.name;
  return [log, name](const std::string& action, const std::string& target,
                     const absl::Status& outcome) {
    if (absl::Status st = log->Record({name, action, target, "", outcome});
        !st.ok()) {
      TS_LOG(WARNING) << st;
    }
  };
}

std::string ManagementService::Author(const Principal& who,
                                      const std::string& asked) const {
  // Authenticated: the principal, never free text.
  return auth_->enabled() ? who.name : asked;
}

ManagementService::~ManagementService() = default;

grpc::ServerReadReactor<v1::RegisterModelRequest>*
ManagementService::RegisterModel(CallbackServerContext* ctx,
                                 v1::RegisterModelResponse* response) {
  auto who = Allow(ctx, Role::kAdmin, "RegisterModel", "", false);
  if (!who.ok()) {
    Audit({who.ok() ? who->name : "(unauthenticated)", "RegisterModel", "", "",
           who.status()});
    return new RefusedReader<v1::RegisterModelRequest>(
        ToGrpcStatus(who.status()));
  }
  return NewRegisterReactor(core_, slow_work_.get(), ctx, response,
                            Author(*who, "registration"), MakeAuditHook(*who));
}

ServerUnaryReactor* ManagementService::UnregisterModel(
    CallbackServerContext* ctx, const v1::UnregisterModelRequest* request,
    v1::UnregisterModelResponse*) {
  auto who = Allow(ctx, Role::kAdmin, "UnregisterModel", request->name(), true);
  if (!who.ok()) return Done(ctx, who.status());
  return Done(ctx, core_->registrar()->Unregister(request->name()));
}

ServerUnaryReactor* ManagementService::ListModels(
    CallbackServerContext* ctx, const v1::ListModelsRequest*,
    v1::ListModelsResponse* response) {
  auto who = Allow(ctx, Role::kAdmin, "ListModels", "", false);
  if (!who.ok()) return Done(ctx, who.status());
  for (const ModelStatus& m : core_->registry()->List()) {
    ModelStatusToProto(m, response->add_models());
  }
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* ManagementService::GetModel(
    CallbackServerContext* ctx, const v1::GetModelRequest* request,
    v1::ModelInfo* response) {
  auto who = Allow(ctx, Role::kAdmin, "GetModel", request->name(), false);
  if (!who.ok()) return Done(ctx, who.status());
  auto status = core_->registry()->Get(request->name());
  if (status.ok()) ModelStatusToProto(*status, response);
  return Done(ctx, status.status());
}

grpc::ServerReadReactor<v1::UploadCalibrationRequest>*
ManagementService::UploadCalibration(CallbackServerContext* ctx,
                                     v1::CalibrationSetInfo* response) {
  auto who = Allow(ctx, Role::kAdmin, "UploadCalibration", "", false);
  if (!who.ok()) {
    Audit({"(unauthenticated)", "UploadCalibration", "", "", who.status()});
    return new RefusedReader<v1::UploadCalibrationRequest>(
        ToGrpcStatus(who.status()));
  }
  return NewCalibrationReactor(core_, slow_work_.get(), ctx, response,
                               MakeAuditHook(*who));
}

ServerUnaryReactor* ManagementService::ListCalibrationSets(
    CallbackServerContext* ctx, const v1::ListCalibrationSetsRequest* request,
    v1::ListCalibrationSetsResponse* response) {
  auto who =
      Allow(ctx, Role::kAdmin, "ListCalibrationSets", request->model(), false);
  if (!who.ok()) return Done(ctx, who.status());
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
  auto who = Allow(ctx, Role::kAdmin, "DeleteCalibrationSet",
                   request->model() + "/" + request->set(), true);
  if (!who.ok()) return Done(ctx, who.status());
  return Done(
      ctx, core_->quantization()->DeleteSet(request->model(), request->set()));
}

ServerUnaryReactor* ManagementService::Quantize(
    CallbackServerContext* ctx, const v1::QuantizeRequest* request,
    v1::Job* response) {
  auto who = Allow(ctx, Role::kAdmin, "Quantize", request->model(), true);
  if (!who.ok()) return Done(ctx, who.status());
  auto req = QuantizeRequestFromProto(*request);
  if (!req.ok()) return Done(ctx, req.status());
  auto job = core_->quantization()->StartQuantize(*req);
  if (job.ok()) JobToProto(*job, response);
  return Done(ctx, job.status());
}

ServerUnaryReactor* ManagementService::GetJob(CallbackServerContext* ctx,
                                              const v1::GetJobRequest* request,
                                              v1::Job* response) {
  auto who = Allow(ctx, Role::kAdmin, "GetJob", request->id(), false);
  if (!who.ok()) return Done(ctx, who.status());
  auto job = core_->jobs()->Get(request->id());
  if (job.ok()) JobToProto(*job, response);
  return Done(ctx, job.status());
}

grpc::ServerWriteReactor<v1::Job>* ManagementService::WatchJob(
    CallbackServerContext* ctx, const v1::GetJobRequest* request) {
  auto who = Allow(ctx, Role::kAdmin, "WatchJob", request->id(), false);
  if (!who.ok()) {
    return new RefusedWriter<v1::Job>(ToGrpcStatus(who.status()));
  }
  return NewWatchReactor(core_->jobs(), request->id());
}

ServerUnaryReactor* ManagementService::ListJobs(
    CallbackServerContext* ctx, const v1::ListJobsRequest* request,
    v1::ListJobsResponse* response) {
  auto who = Allow(ctx, Role::kAdmin, "ListJobs", request->model(), false);
  if (!who.ok()) return Done(ctx, who.status());
  for (const JobStatus& j : core_->jobs()->List(request->model())) {
    JobToProto(j, response->add_jobs());
  }
  return Done(ctx, absl::OkStatus());
}

ServerUnaryReactor* ManagementService::CancelJob(
    CallbackServerContext* ctx, const v1::GetJobRequest* request,
    v1::Job* response) {
  auto who = Allow(ctx, Role::kAdmin, "CancelJob", request->id(), true);
  if (!who.ok()) return Done(ctx, who.status());
  auto job = core_->jobs()->Cancel(request->id());
  if (job.ok()) JobToProto(*job, response);
  return Done(ctx, job.status());
}

ServerUnaryReactor* ManagementService::GetQuantizationReport(
    CallbackServerContext* ctx, const v1::GetQuantizationReportRequest* request,
    v1::QuantizationReport* out) {
  auto who = Allow(ctx, Role::kAdmin, "GetQuantizationReport", request->model(),
                   false);
  if (!who.ok()) return Done(ctx, who.status());
  const std::string variant =
      request->variant().empty() ? "int8" : request->variant();
  auto r = core_->quantization()->GetReport(request->model(), variant);
  if (r.ok()) ReportToProto(request->model(), variant, *r, out);
  return Done(ctx, r.status());
}

ServerUnaryReactor* ManagementService::SetTrafficPolicy(
    CallbackServerContext* ctx, const v1::SetTrafficPolicyRequest* request,
    v1::TrafficPolicy* response) {
  auto who =
      Allow(ctx, Role::kAdmin, "SetTrafficPolicy", request->model(), true);
  if (!who.ok()) return Done(ctx, who.status());
  auto policy = PolicyFromProto(request->policy());
  if (!policy.ok()) return Done(ctx, policy.status());
  return PolicyDone(
      ctx,
      core_->traffic()->SetPolicy(
          request->model(), *policy,
          By(Author(*who, request->author()), request->reason(),
             request->has_expected_version(), request->expected_version())),
      response);
}

ServerUnaryReactor* ManagementService::GetTrafficPolicy(
    CallbackServerContext* ctx, const v1::GetTrafficPolicyRequest* request,
    v1::TrafficPolicy* response) {
  auto who =
      Allow(ctx, Role::kAdmin, "GetTrafficPolicy", request->model(), false);
  if (!who.ok()) return Done(ctx, who.status());
  return PolicyDone(ctx, core_->registry()->GetPolicy(request->model()),
                    response);
}

ServerUnaryReactor* ManagementService::Promote(
    CallbackServerContext* ctx, const v1::PromoteRequest* request,
    v1::TrafficPolicy* response) {
  auto who = Allow(ctx, Role::kAdmin, "Promote",
                   request->model() + ":" + request->variant(), true);
  if (!who.ok()) return Done(ctx, who.status());
  return PolicyDone(
      ctx,
      core_->traffic()->Promote(
          request->model(), request->variant(),
          By(Author(*who, request->author()), request->reason(),
             request->has_expected_version(), request->expected_version())),
      response);
}

ServerUnaryReactor* ManagementService::Rollback(
    CallbackServerContext* ctx, const v1::RollbackRequest* request,
    v1::TrafficPolicy* response) {
  auto who = Allow(ctx, Role::kAdmin, "Rollback", request->model(), true);
  if (!who.ok()) return Done(ctx, who.status());
  return PolicyDone(
      ctx,
      core_->traffic()->Rollback(
          request->model(),
          By(Author(*who, request->author()), request->reason(),
             request->has_expected_version(), request->expected_version())),
      response);
}

ServerUnaryReactor* ManagementService::PolicyHistory(
    CallbackServerContext* ctx, const v1::PolicyHistoryRequest* request,
    v1::PolicyHistoryResponse* response) {
  auto who = Allow(ctx, Role::kAdmin, "PolicyHistory", request->model(), false);
  if (!who.ok()) return Done(ctx, who.status());
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
  auto who = Allow(ctx, Role::kAdmin, "SetBatching", request->model(), true);
  if (!who.ok()) return Done(ctx, who.status());
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
  auto who = Allow(ctx, Role::kInfer, "GetModelStats", request->model(), false);
  if (!who.ok()) return Done(ctx, who.status());
  auto snap = SnapshotModel(*core_->registry(), request->model());
  if (snap.ok()) ModelSnapshotToProto(*snap, response);
  return Done(ctx, snap.status());
}

}  // namespace twinserve
