// LoadGenerator: drives ModelInfer over real gRPC the way perf_analyzer
// does, either closed loop (a fixed number of requests in flight) or open
// loop (a fixed request rate), and measures client-side latency plus the
// server's own split (queue, compute, batch) from ModelStatistics deltas
// over the same window.
#ifndef TWINSERVE_CLIENT_LOAD_GENERATOR_H_
#define TWINSERVE_CLIENT_LOAD_GENERATOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "proto/grpc_service.grpc.pb.h"

namespace twinserve {

struct LoadOptions {
  std::string model;
  // Empty: the traffic policy routes each request; else pinned to it.
  std::string version;
  // Closed loop: requests kept in flight. Open loop: the most in flight
  // before sends are skipped (and counted).
  int concurrency = 1;
  // Requests per second; 0 = closed loop.
  double rate = 0;
  double warmup_seconds = 1;
  double duration_seconds = 5;
  // Sent in turn. Each must name `model` and `version`.
  std::vector<inference::ModelInferRequest> requests;
  // Inferences per request (dim 0 of the inputs), for inferences/s.
  int64_t rows_per_request = 1;
  // Sends ServerLive instead of ModelInfer: the round trip of an empty RPC
  // through the same server, the floor under every inference's latency.
  bool ping = false;
  // Asks the server for its per-request stage timings (decode, engine,
  // encode; twinserve's response parameters) and reports their medians.
  bool server_timings = false;
  // Called about twice a second while running.
  std::function<void(const std::string& line)> progress;
};

struct LoadResult {
  int concurrency = 0;
  double target_rate = 0;
  double seconds = 0;
  uint64_t requests = 0;  // completed OK inside the window
  uint64_t errors = 0;
  std::map<std::string, uint64_t> errors_by_code;
  uint64_t skipped = 0;  // open loop: sends skipped at the in-flight cap
  double requests_per_second = 0;
  double inferences_per_second = 0;
  double mean_us = 0, p50_us = 0, p90_us = 0, p99_us = 0, max_us = 0;
  // Per request, from ModelStatistics over the window (all variants of the
  // model when routed). -1 when unavailable. `server_request_us` is the
  // whole request inside the server's engine (routing, queue, compute,
  // statistics), without gRPC and the OIP codec.
  double server_request_us = -1;
  double server_queue_us = -1;
  double server_compute_us = -1;
  double server_batch = -1;  // inferences per execution
  // With server_timings: medians over the window of the handler's stages,
  // in microseconds; -1 when the server did not report them.
  double stage_decode_us = -1;
  double stage_engine_us = -1;
  double stage_encode_us = -1;
};

// Runs one load step against `stubs` (one per channel; requests are spread
// over them). INVALID_ARGUMENT for empty requests or bad options.
absl::StatusOr<LoadResult> RunLoad(
    const std::vector<std::unique_ptr<inference::GRPCInferenceService::Stub>>&
        stubs,
    const LoadOptions& options);

// The p-th percentile (0-100) of `sorted` by nearest rank; 0 if empty.
double Percentile(const std::vector<double>& sorted, double p);

}  // namespace twinserve

#endif  // TWINSERVE_CLIENT_LOAD_GENERATOR_H_
