// InferenceEngine: the request path below the protocol layer, one straight
// line: route (one decision: who answers, who compares) -> validate the
// inputs against the model's signature -> submit to the servable's
// scheduler -> run -> finish (statistics recorded once, answer, and the
// comparison run off the response path). It knows nothing of gRPC:
// server/grpc translates OIP messages to InferRequest and InferResult back.
#ifndef TWINSERVE_SERVER_SERVING_ENGINE_H_
#define TWINSERVE_SERVER_SERVING_ENGINE_H_

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "server/common/tensor.h"
#include "server/serving/servable.h"
#include "server/serving/thread_pool.h"

namespace twinserve {

struct InferRequest {
  std::string model;
  // Empty: the traffic policy chooses. Otherwise a variant name ("fp32").
  std::string version;
  // By name, in any order. Views may borrow the caller's bytes: the caller
  // keeps them alive until the callback has run.
  std::vector<HostTensor> inputs;
  // Names of the outputs wanted, in response order; empty means all.
  std::vector<std::string> requested_outputs;
  // Makes the traffic policy's choice sticky for this key (a user id...).
  std::string routing_key;
  // Steady-clock time (ns) after which the request is dropped before
  // running with DEADLINE_EXCEEDED; 0 = none.
  uint64_t deadline_ns = 0;
};

struct InferResult {
  std::string model;
  std::string variant;  // which variant served
  std::vector<HostTensor> outputs;
};

using InferCallback = std::function<void(absl::StatusOr<InferResult>)>;

struct EngineOptions {
  // Comparison runs wait in a bounded queue; past it they are dropped (and
  // counted), never delaying answers.
  int shadow_threads = 1;
  size_t shadow_queue = 64;
  // Input bytes all requests between admission and answer may hold
  // together; past it a request is refused with RESOURCE_EXHAUSTED (queue
  // lengths alone would let a few huge requests exhaust memory). 0: no
  // limit.
  uint64_t max_inflight_bytes = uint64_t{1} << 30;
};

class InferenceEngine {
 public:
  // `router` must outlive the engine.
  InferenceEngine(const ServableRouter* router, EngineOptions options);
  // Finishes queued comparison runs before returning.
  ~InferenceEngine();

  // Validates synchronously; on error calls `done` at once on this thread.
  // Otherwise the servable's scheduler runs it and `done` is called there.
  // Errors: NOT_FOUND (model, version), UNAVAILABLE (not ready),
  // INVALID_ARGUMENT (inputs: unknown, missing, duplicated, wrong datatype,
  // shape or byte size; unknown requested output), RESOURCE_EXHAUSTED (the
  // queue is full, or max_inflight_bytes would be passed), DEADLINE_EXCEEDED
  // (the deadline passed before it ran), INTERNAL (forward threw).
  void Infer(InferRequest request, InferCallback done);

  // Input bytes of requests admitted and not yet answered.
  uint64_t inflight_bytes() const { return inflight_bytes_.load(); }

  // Blocking convenience for tests and in-process callers.
  absl::StatusOr<InferResult> InferSync(InferRequest request);

  // Requests that failed before a variant was chosen (unknown model or
  // version, a model not loaded), by code: counted here under no model
  // name, so that client text never becomes a metric label.
  std::map<absl::StatusCode, uint64_t> UnroutedFailures() const;

 private:
  struct Call;
  void Fail(Call& call, const absl::Status& status);
  void Finish(Call& call, absl::StatusOr<std::vector<HostTensor>> outputs,
              const ExecutionInfo& info, const std::vector<HostTensor>& inputs);
  // Runs the comparison servable on copies of `inputs` off the response
  // path and records the drift of its first output against `served`.
  void Compare(const Acquired& acquired, std::vector<HostTensor> inputs,
               HostTensor served);

  const ServableRouter* const router_;
  const size_t shadow_queue_;
  const uint64_t max_inflight_bytes_;
  std::atomic<uint64_t> inflight_bytes_{0};
  std::array<std::atomic<uint64_t>, 17> unrouted_{};
  ThreadPool shadow_pool_;
};

// Orders `inputs` as `signature.inputs` and validates each one. Exposed for
// tests.
absl::StatusOr<std::vector<HostTensor>> MatchInputs(
    const Signature& signature, std::vector<HostTensor> inputs);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_SERVING_ENGINE_H_
