// The streaming calls of the management service, as gRPC callback reactors:
// RegisterModel and UploadCalibration (client streams: received into
// staging or memory, then handed to the core on the slow-work pool, never on
// a gRPC thread), and WatchJob (a server stream of a job's statuses, newest
// only, never an older one after a newer one). Each reactor deletes itself
// when its call is done.
#ifndef TWINSERVE_SERVER_GRPC_MANAGEMENT_REACTORS_H_
#define TWINSERVE_SERVER_GRPC_MANAGEMENT_REACTORS_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <string>

#include "proto/twinserve.grpc.pb.h"
#include "server/core/jobs.h"
#include "server/core/server_core.h"
#include "server/serving/thread_pool.h"

namespace twinserve {

// Hears an admin call's action, target and outcome (the audit log).
using AuditHook = std::function<void(
    const std::string& action, const std::string& target, const absl::Status&)>;

// `core` and `slow_work` must outlive the call. `author` signs a traffic
// plan the registration carries; `audit` (may be null) hears the outcome.
grpc::ServerReadReactor<v1::RegisterModelRequest>* NewRegisterReactor(
    ServerCore* core, ThreadPool* slow_work, grpc::CallbackServerContext* ctx,
    v1::RegisterModelResponse* response, std::string author = "registration",
    AuditHook audit = nullptr);
grpc::ServerReadReactor<v1::UploadCalibrationRequest>* NewCalibrationReactor(
    ServerCore* core, ThreadPool* slow_work, grpc::CallbackServerContext* ctx,
    v1::CalibrationSetInfo* response, AuditHook audit = nullptr);
// NOT_FOUND at once for an unknown job.
grpc::ServerWriteReactor<v1::Job>* NewWatchReactor(JobManager* jobs,
                                                   const std::string& id);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_MANAGEMENT_REACTORS_H_
