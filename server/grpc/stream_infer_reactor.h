// The ModelStreamInfer reactor: reads requests as they come, runs them
// concurrently and writes each answer (or its error_message) as it finishes,
// one write at a time as gRPC requires. Bounded: past `max_in_flight`
// requests still computing, a request is answered at once with
// RESOURCE_EXHAUSTED; past `max_in_flight` answers not yet taken by the
// transport (a client that does not read), reading pauses until it reads.
#ifndef TWINSERVE_SERVER_GRPC_STREAM_INFER_REACTOR_H_
#define TWINSERVE_SERVER_GRPC_STREAM_INFER_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include "proto/grpc_service.grpc.pb.h"
#include "server/grpc/shared_memory.h"
#include "server/serving/engine.h"

namespace twinserve {

// A reactor that deletes itself when the stream is done. `engine` must
// outlive the stream.
grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
NewStreamInferReactor(InferenceEngine* engine, SharedMemoryScope shm,
                      int max_in_flight);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_GRPC_STREAM_INFER_REACTOR_H_
