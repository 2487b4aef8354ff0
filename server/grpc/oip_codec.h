// Open Inference Protocol messages <-> the core's InferRequest/InferResult.
// Raw contents become borrowed views (no copy); typed `contents` are packed
// into owned buffers.
#ifndef TWINSERVE_SERVER_GRPC_OIP_CODEC_H_
#define TWINSERVE_SERVER_GRPC_OIP_CODEC_H_

#include "absl/status/statusor.h"
#include "proto/grpc_service.pb.h"
#include "server/core/inference.h"

namespace twinserve {

// Response parameter naming the variant that served a request.
inline constexpr char kVariantParameter[] = "twinserve_variant";

// The result borrows bytes from `request`, which must outlive it.
// INVALID_ARGUMENT for malformed tensors: unknown datatype, raw and typed
// contents mixed, a raw_input_contents count that does not match inputs,
// typed contents whose count or kind does not fit the datatype and shape.
absl::StatusOr<InferRequest> DecodeInferRequest(
    const inference::ModelInferRequest& request);

// The tensors of a request-like message (also used for calibration
// uploads): raw contents become views into `raw_contents`.
absl::StatusOr<std::vector<HostTensor>> DecodeTensors(
    const google::protobuf::RepeatedPtrField<
        inference::ModelInferRequest::InferInputTensor>& inputs,
    const google::protobuf::RepeatedPtrField<std::string>& raw_contents);

// Fills `response` (model, version = variant, id, outputs as raw bytes).
void EncodeInferResponse(const inference::ModelInferRequest& request,
                         const InferResult& result,
                         inference::ModelInferResponse* response);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_OIP_CODEC_H_
