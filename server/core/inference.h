// InferenceEngine: the request path below the protocol layer. It matches a
// request's tensors to the model's declared inputs, picks the servable,
// runs it on the inference worker pool and records statistics. It knows
// nothing of gRPC: server/grpc translates OIP messages to InferRequest and
// InferResult back.
#ifndef TWINSERVE_SERVER_CORE_INFERENCE_H_
#define TWINSERVE_SERVER_CORE_INFERENCE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/status/statusor.h"
#include "server/core/batcher.h"
#include "server/core/metrics.h"
#include "server/core/registry.h"
#include "server/core/tensor.h"
#include "server/core/thread_pool.h"

namespace twinserve {

struct InferRequest {
  std::string model;
  // Empty: the model's default variant. Otherwise a variant name ("fp32").
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
// Indices of the outputs a request wants (inline: no allocation).
using OutputIndices = absl::InlinedVector<int, 4>;

struct EngineOptions {
  // Threads running forward passes. Together with LibTorch's intra-op
  // threads this should not exceed the cores.
  int worker_threads = 2;
  // Shadow runs wait in a bounded queue; past it they are dropped (and
  // counted), never delaying answers.
  int shadow_threads = 1;
  size_t shadow_queue = 64;
  // Unbatched requests of a variant whose mean compute time is below this
  // run on the thread that received them (a gRPC thread) instead of a
  // worker: for tiny models the two thread hand-offs cost more than the
  // forward pass. 0 turns it off.
  int64_t inline_compute_us = 150;
};

class InferenceEngine {
 public:
  // `registry` (and `metrics`, if not null) must outlive the engine.
  InferenceEngine(const ModelRegistry* registry, EngineOptions options,
                  Metrics* metrics = nullptr);
  // Finishes queued work before returning.
  ~InferenceEngine();

  // Validates synchronously; on error calls `done` at once on this thread.
  // Otherwise runs on a worker (alone, or stacked with other requests when
  // the variant batches) and calls `done` there. Errors: NOT_FOUND (model,
  // version), UNAVAILABLE (not ready), INVALID_ARGUMENT (inputs: unknown,
  // missing, duplicated, wrong datatype, shape or byte size; unknown
  // requested output), RESOURCE_EXHAUSTED (the variant's queue is full),
  // DEADLINE_EXCEEDED (the deadline passed before it ran), INTERNAL
  // (forward threw).
  void Infer(InferRequest request, InferCallback done);

  // Blocking convenience for tests and in-process callers.
  absl::StatusOr<InferResult> InferSync(InferRequest request);

 private:
  // One request between validation and its answer.
  struct Call {
    ServableHandle handle;
    OutputIndices selected;  // in response order
    InferCallback done;
    uint64_t start_ns = 0;
    Metrics::Variant* metrics = nullptr;
    bool unpinned = false;
    bool queued = false;  // counted in metrics->queued until it runs
  };
  // Counts `call` as waiting; Dequeued() when it starts (or fails).
  static void Queued(Call& call);
  static void Dequeued(Call& call);

  // Runs `call` in one execution of its own, here, unless `deadline_ns`
  // (0 = none) has passed, and answers it.
  void RunAlone(Call& call, const std::vector<HostTensor>& inputs,
                uint64_t deadline_ns);
  // Records a failure of `call` and answers it.
  void Fail(Call& call, const absl::Status& status);
  // Records the outcome of `call`, answers it and starts its comparison
  // run, if the policy wants one. `rows` are the request's own inferences.
  void Finish(Call& call, absl::StatusOr<std::vector<HostTensor>> outputs,
              const std::vector<HostTensor>& inputs, const BatchInfo& info);
  // The variant's batcher, made on first use.
  Batcher* BatcherFor(const Servable& servable);
  // Runs `comparison.run` on copies of `inputs` off the response path and
  // compares its first output with the served one (`served`).
  void Compare(ModelRegistry::Comparison comparison,
               std::vector<HostTensor> inputs, HostTensor served);

  const ModelRegistry* const registry_;
  Metrics* const metrics_;
  const size_t shadow_queue_;
  const uint64_t inline_compute_ns_;
  ThreadPool pool_;
  ThreadPool shadow_pool_;
  absl::Mutex batchers_mu_;
  // Destroyed before the pools: a batcher drains onto pool_.
  std::map<std::pair<std::string, std::string>, std::unique_ptr<Batcher>>
      batchers_ ABSL_GUARDED_BY(batchers_mu_);
};

// Orders `inputs` as `signature.inputs` and validates each one. Exposed for
// tests.
absl::StatusOr<std::vector<HostTensor>> MatchInputs(
    const Signature& signature, std::vector<HostTensor> inputs);

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_CORE_INFERENCE_H_
