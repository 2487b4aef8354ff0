// twinserve.v1 messages <-> the core's types, both ways, for the management
// service. Every field the core has crosses; what a message leaves unset
// takes the core's default. Domain rules (a mode's default variant, option
// ranges) live in the core and quant/, not here.
#ifndef TWINSERVE_SERVER_GRPC_MANAGEMENT_CONVERT_H_
#define TWINSERVE_SERVER_GRPC_MANAGEMENT_CONVERT_H_

#include "absl/status/statusor.h"
#include "proto/twinserve.pb.h"
#include "quant/report.h"
#include "server/core/jobs.h"
#include "server/core/model_stats.h"
#include "server/core/quantization.h"
#include "server/core/registry.h"
#include "server/serving/batching.h"
#include "server/traffic/policy.h"

namespace twinserve {

absl::StatusOr<TensorSpec> SpecFromProto(const v1::TensorSpec& proto);
void SpecToProto(const TensorSpec& spec, v1::TensorSpec* out);

BatchingConfig BatchingFromProto(const v1::BatchingConfig& proto);
void BatchingToProto(const BatchingConfig& config, v1::BatchingConfig* out);

void ModelStatusToProto(const ModelStatus& status, v1::ModelInfo* out);
void JobToProto(const JobStatus& status, v1::Job* out);

// Unset optional fields keep the core's defaults. INVALID_ARGUMENT for an
// unknown kind.
absl::StatusOr<TrafficPolicy> PolicyFromProto(const v1::TrafficPolicy& proto);
// Every field, steps, stage, thresholds and guards included.
void PolicyToProto(const TrafficPolicy& policy, v1::TrafficPolicy* out);
void PolicyChangeToProto(const PolicyChange& change, v1::PolicyChange* out);

// INVALID_ARGUMENT for an unknown mode or method; option ranges are the
// quantizer's to check (ValidateQuantizeOptions).
absl::StatusOr<QuantizeRequest> QuantizeRequestFromProto(
    const v1::QuantizeRequest& proto);
void ReportToProto(const std::string& model, const std::string& variant,
                   const QuantizationReport& report,
                   v1::QuantizationReport* out);
void ModelSnapshotToProto(const ModelSnapshot& snapshot, v1::ModelStats* out);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_MANAGEMENT_CONVERT_H_
