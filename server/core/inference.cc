#include "server/core/inference.h"

#include <chrono>
#include <future>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/core/status_macros.h"

namespace twinserve {
namespace {

uint64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string SpecNames(const std::vector<TensorSpec>& specs) {
  return absl::StrJoin(specs, ", ", [](std::string* out, const TensorSpec& s) {
    absl::StrAppend(out, s.name);
  });
}

// Inferences in one request: dim 0 when the model's first input has a free
// leading (batch) dimension, else 1.
uint64_t BatchSize(const Signature& sig, const std::vector<HostTensor>& in) {
  if (!sig.inputs.empty() && !sig.inputs[0].shape.empty() &&
      sig.inputs[0].shape[0] == -1 && !in.empty() && !in[0].shape.empty()) {
    return static_cast<uint64_t>(in[0].shape[0]);
  }
  return 1;
}

absl::StatusOr<std::vector<int>> SelectOutputs(
    const Signature& sig, const std::vector<std::string>& requested) {
  std::vector<int> out;
  if (requested.empty()) {
    for (size_t i = 0; i < sig.outputs.size(); ++i) out.push_back(i);
    return out;
  }
  for (const std::string& name : requested) {
    int found = -1;
    for (size_t i = 0; i < sig.outputs.size(); ++i) {
      if (sig.outputs[i].name == name) found = i;
    }
    if (found < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown output '", name, "'; the model's outputs are ",
                       SpecNames(sig.outputs)));
    }
    out.push_back(found);
  }
  return out;
}

}  // namespace

absl::StatusOr<std::vector<HostTensor>> MatchInputs(
    const Signature& signature, std::vector<HostTensor> inputs) {
  std::vector<HostTensor> ordered(signature.inputs.size());
  std::vector<bool> seen(signature.inputs.size(), false);
  for (HostTensor& in : inputs) {
    int index = -1;
    for (size_t i = 0; i < signature.inputs.size(); ++i) {
      if (signature.inputs[i].name == in.name) index = i;
    }
    if (index < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown input '", in.name, "'; the model's inputs are ",
                       SpecNames(signature.inputs)));
    }
    if (seen[index]) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name, "' is given twice"));
    }
    TS_RETURN_IF_ERROR(ValidateTensor(signature.inputs[index], in));
    seen[index] = true;
    ordered[index] = std::move(in);
  }
  for (size_t i = 0; i < seen.size(); ++i) {
    if (!seen[i]) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing input '", signature.inputs[i].name,
                       "' (expected ", DataTypeName(signature.inputs[i].dtype),
                       " ", ShapeToString(signature.inputs[i].shape), ")"));
    }
  }
  return ordered;
}

InferenceEngine::InferenceEngine(const ModelRegistry* registry,
                                 EngineOptions options)
    : registry_(registry),
      pool_("infer", std::max(1, options.worker_threads)) {}

InferenceEngine::~InferenceEngine() = default;

void InferenceEngine::Infer(InferRequest request, InferCallback done) {
  const uint64_t start = NowNs();
  auto servable =
      registry_->Acquire(request.model, request.version, request.routing_key);
  if (!servable.ok()) {
    done(servable.status());
    return;
  }
  ServableHandle handle = std::move(*servable);
  const Signature& sig = handle->runner->signature();
  auto inputs = MatchInputs(sig, std::move(request.inputs));
  if (!inputs.ok()) {
    handle->stats->RecordFailure(NowNs() - start);
    done(inputs.status());
    return;
  }
  auto selected = SelectOutputs(sig, request.requested_outputs);
  if (!selected.ok()) {
    handle->stats->RecordFailure(NowNs() - start);
    done(selected.status());
    return;
  }
  pool_.Schedule([handle = std::move(handle), inputs = std::move(*inputs),
                  selected = std::move(*selected), done = std::move(done),
                  start]() mutable {
    const uint64_t queued = NowNs() - start;
    RunTimings timings;
    auto outputs = handle->runner->Run(inputs, &timings);
    if (!outputs.ok()) {
      handle->stats->RecordFailure(NowNs() - start);
      done(outputs.status());
      return;
    }
    InferResult result;
    result.model = handle->model;
    result.variant = handle->variant;
    result.outputs.reserve(selected.size());
    for (int i : selected) result.outputs.push_back(std::move((*outputs)[i]));
    handle->stats->RecordSuccess(
        NowNs() - start, queued, timings.input_ns, timings.infer_ns,
        timings.output_ns, BatchSize(handle->runner->signature(), inputs));
    done(std::move(result));
  });
}

absl::StatusOr<InferResult> InferenceEngine::InferSync(InferRequest request) {
  std::promise<absl::StatusOr<InferResult>> promise;
  auto future = promise.get_future();
  Infer(std::move(request), [&promise](absl::StatusOr<InferResult> r) {
    promise.set_value(std::move(r));
  });
  return future.get();
}

}  // namespace twinserve
