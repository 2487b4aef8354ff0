// Open Inference Protocol messages <-> the core's InferRequest/InferResult.
// Raw contents become borrowed views (no copy); typed `contents` are packed
// into owned buffers.
#ifndef TWINSERVE_SERVER_GRPC_OIP_CODEC_H_
#define TWINSERVE_SERVER_GRPC_OIP_CODEC_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/grpc_service.pb.h"
#include "server/grpc/shared_memory.h"
#include "server/serving/engine.h"

namespace twinserve {

// Response parameter naming the variant that served a request.
inline constexpr char kVariantParameter[] = "twinserve_variant";
// Request parameter (Triton's): microseconds the request may wait before it
// runs; past it, it is dropped unrun with DEADLINE_EXCEEDED. Also the way to
// give each message of a ModelStreamInfer stream its own deadline.
inline constexpr char kTimeoutParameter[] = "timeout";
// Requested-output parameter (Triton's classification extension): return
// the top N entries of the output's last dim instead of the tensor, as
// BYTES elements "value:index" shaped [..., N].
inline constexpr char kClassificationParameter[] = "classification";

// Request parameter (bool): answer with where the request's time went in
// the server, as int64 response parameters in nanoseconds: from the handler
// starting to the request decoded, decoded to the engine's answer (routing,
// queue, compute, statistics), and the response's encoding. For twinbench's
// server split; the gRPC transport is outside all three.
inline constexpr char kTimingsParameter[] = "twinserve_timings";
inline constexpr char kDecodeNsParameter[] = "twinserve_decode_ns";
inline constexpr char kEngineNsParameter[] = "twinserve_engine_ns";
inline constexpr char kEncodeNsParameter[] = "twinserve_encode_ns";

// Triton's tensor parameters naming a shared memory region.
inline constexpr char kShmRegionParameter[] = "shared_memory_region";
inline constexpr char kShmOffsetParameter[] = "shared_memory_offset";
inline constexpr char kShmByteSizeParameter[] = "shared_memory_byte_size";

// The shared memory ranges one request's outputs go to. (Its inputs in
// shared memory keep their regions mapped through HostTensor::owner.)
struct SharedMemoryUse {
  std::map<std::string, SharedMemoryView> outputs;  // by output name
};

// The result borrows bytes from `request`, which must outlive it.
// INVALID_ARGUMENT for malformed tensors: unknown datatype, raw and typed
// contents mixed, a raw_input_contents count that does not match the inputs
// not in shared memory, typed contents whose count or kind does not fit the
// datatype and shape. Inputs and outputs may name regions of `shm` (Triton's
// shared-memory parameters); without `shm` such a request is refused. When
// outputs go to shared memory, `*use` is set: pass it to
// EncodeInferResponse.
absl::StatusOr<InferRequest> DecodeInferRequest(
    const inference::ModelInferRequest& request,
    const SharedMemoryScope* shm = nullptr,
    std::shared_ptr<SharedMemoryUse>* use = nullptr);

// The tensors of a request-like message (also used for calibration
// uploads): raw contents become views into `raw_contents`, inputs in shared
// memory views into `shm` that own a pin on their region.
absl::StatusOr<std::vector<HostTensor>> DecodeTensors(
    const google::protobuf::RepeatedPtrField<
        inference::ModelInferRequest::InferInputTensor>& inputs,
    const google::protobuf::RepeatedPtrField<std::string>& raw_contents,
    const SharedMemoryScope* shm = nullptr);

// Fills `response` (model, version = variant, id, outputs as raw bytes, or,
// for outputs `use` places in shared memory, written there and described by
// the same parameters with an empty raw entry, so indexes stay aligned).
// Outputs requested with `classification` are replaced by their top N.
// INVALID_ARGUMENT when an output does not fit its region, or cannot be
// classified (not numeric, fewer than N classes).
absl::Status EncodeInferResponse(const inference::ModelInferRequest& request,
                                 const InferResult& result,
                                 inference::ModelInferResponse* response,
                                 const SharedMemoryUse* use = nullptr);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_OIP_CODEC_H_
