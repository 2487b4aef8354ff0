#include "server/core/inference.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/drift.h"
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
                                 EngineOptions options, Metrics* metrics)
    : registry_(registry),
      metrics_(metrics),
      shadow_queue_(options.shadow_queue),
      pool_("infer", std::max(1, options.worker_threads)),
      shadow_pool_("shadow", std::max(1, options.shadow_threads)) {}

InferenceEngine::~InferenceEngine() = default;

void InferenceEngine::Infer(InferRequest request, InferCallback done) {
  const uint64_t start = NowNs();
  auto servable =
      registry_->Acquire(request.model, request.version, request.routing_key);
  if (!servable.ok()) {
    if (metrics_ != nullptr) {
      metrics_->RecordFailure(
          request.model, request.version.empty() ? "-" : request.version,
          absl::StatusCodeToString(servable.status().code()).c_str());
    }
    done(servable.status());
    return;
  }
  ServableHandle handle = std::move(*servable);
  Metrics::Variant* m =
      metrics_ != nullptr ? metrics_->ForVariant(handle->model, handle->variant)
                          : nullptr;
  // Every exit below records its outcome here, exactly once.
  auto fail = [this, m, start](const ServableHandle& h,
                               const absl::Status& st) {
    h->stats->RecordFailure(NowNs() - start);
    if (m != nullptr) {
      metrics_->RecordFailure(h->model, h->variant,
                              absl::StatusCodeToString(st.code()).c_str());
      m->inflight->Decrement();
    }
  };
  if (m != nullptr) m->inflight->Increment();
  const Signature& sig = handle->runner->signature();
  auto inputs = MatchInputs(sig, std::move(request.inputs));
  if (!inputs.ok()) {
    fail(handle, inputs.status());
    done(inputs.status());
    return;
  }
  auto selected = SelectOutputs(sig, request.requested_outputs);
  if (!selected.ok()) {
    fail(handle, selected.status());
    done(selected.status());
    return;
  }
  const bool unpinned = request.version.empty();
  pool_.Schedule([this, handle = std::move(handle), inputs = std::move(*inputs),
                  selected = std::move(*selected), done = std::move(done),
                  start, m, fail, unpinned]() mutable {
    const uint64_t queued = NowNs() - start;
    RunTimings timings;
    auto outputs = handle->runner->Run(inputs, &timings);
    if (!outputs.ok()) {
      fail(handle, outputs.status());
      done(outputs.status());
      return;
    }
    // The shadow decision and its copies happen before answering (the
    // request's bytes die with the answer, and outputs move into it); the
    // shadow run itself happens after.
    ModelRegistry::Comparison shadow =
        unpinned ? registry_->CompareFor(handle->model, handle->variant)
                 : ModelRegistry::Comparison();
    std::vector<HostTensor> shadow_inputs;
    HostTensor primary;
    if (shadow.run != nullptr) {
      for (const HostTensor& t : inputs) {
        shadow_inputs.push_back(HostTensor::Owned(
            t.name, t.dtype, t.shape, std::string(t.data, t.byte_size)));
      }
      primary = (*outputs)[0];  // shares the tensor's storage
    }
    InferResult result;
    result.model = handle->model;
    result.variant = handle->variant;
    result.outputs.reserve(selected.size());
    for (int i : selected) result.outputs.push_back((*outputs)[i]);
    const uint64_t total = NowNs() - start;
    const uint64_t batch = BatchSize(handle->runner->signature(), inputs);
    handle->stats->RecordSuccess(total, queued, timings.input_ns,
                                 timings.infer_ns, timings.output_ns, batch);
    if (m != nullptr) {
      m->success->Increment();
      m->request_seconds->Observe(total * 1e-9);
      m->queue_seconds->Observe(queued * 1e-9);
      m->compute_seconds->Observe(
          (timings.input_ns + timings.infer_ns + timings.output_ns) * 1e-9);
      m->batch_size->Observe(static_cast<double>(batch));
      m->inflight->Decrement();
    }
    done(std::move(result));
    if (shadow.run != nullptr) {
      Compare(std::move(shadow), std::move(shadow_inputs), std::move(primary));
    }
  });
}

void InferenceEngine::Compare(ModelRegistry::Comparison comparison,
                              std::vector<HostTensor> inputs,
                              HostTensor served) {
  Metrics::Drift* d =
      metrics_ != nullptr
          ? metrics_->ForDrift(comparison.run->model, comparison.candidate)
          : nullptr;
  if (shadow_pool_.queue_size() >= shadow_queue_) {
    if (d != nullptr) d->drops->Increment();
    return;
  }
  shadow_pool_.Schedule([comparison = std::move(comparison),
                         inputs = std::move(inputs), served = std::move(served),
                         d]() {
    auto out = comparison.run->runner->Run(inputs, nullptr);
    if (d == nullptr || !out.ok() || out->empty()) return;
    d->runs->Increment();
    const HostTensor& other = (*out)[0];
    if (other.dtype != DataType::kFp32 || served.dtype != DataType::kFp32 ||
        other.byte_size != served.byte_size || other.shape.empty()) {
      return;
    }
    const HostTensor& baseline = comparison.served_is_baseline ? served : other;
    const HostTensor& candidate =
        comparison.served_is_baseline ? other : served;
    const int64_t rows = other.shape.size() > 1 ? other.shape[0] : 1;
    const int64_t cols = ElementCount(other.shape) / std::max<int64_t>(1, rows);
    DriftStats s =
        CompareRows(reinterpret_cast<const float*>(baseline.data),
                    reinterpret_cast<const float*>(candidate.data), rows, cols);
    if (s.rows > 0) d->cosine->Observe(s.cosine_sum / s.rows);
    d->max_abs_error->Observe(s.max_abs_error);
    d->agreements->Increment(static_cast<double>(s.top1_agreements));
    d->disagreements->Increment(static_cast<double>(s.top1_disagreements));
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
