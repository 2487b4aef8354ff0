// The one place where absl::Status and grpc::Status meet (after TF Serving's
// grpc_status_util). Codes map one to one.
#ifndef TWINSERVE_PROTO_GRPC_STATUS_UTIL_H_
#define TWINSERVE_PROTO_GRPC_STATUS_UTIL_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace twinserve {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace twinserve

#endif  // TWINSERVE_PROTO_GRPC_STATUS_UTIL_H_
