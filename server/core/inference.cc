#include "server/core/inference.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <future>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/drift.h"
#include "server/core/clock.h"
#include "server/core/status_macros.h"

namespace twinserve {
namespace {

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

absl::StatusOr<OutputIndices> SelectOutputs(
    const Signature& sig, const std::vector<std::string>& requested) {
  OutputIndices out;
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

// Batches whose execution takes at least this long are spread over idle
// workers (see Batcher::Enqueue).
constexpr uint64_t kSpreadComputeNs = 500'000;

// Shadow and comparison runs must never delay answers: under SCHED_IDLE a
// thread gets a core only when no other thread wants it, and any waking
// request-path thread preempts it at once (nice 19 still takes time slices).
void RunAtIdlePriority() {
  sched_param param{};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  }
}

}  // namespace

absl::StatusOr<std::vector<HostTensor>> MatchInputs(
    const Signature& signature, std::vector<HostTensor> inputs) {
  std::vector<HostTensor> ordered(signature.inputs.size());
  absl::InlinedVector<bool, 8> seen(signature.inputs.size(), false);
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
      inline_compute_ns_(std::max<int64_t>(0, options.inline_compute_us) *
                         1000),
      pool_("infer", std::max(1, options.worker_threads)),
      shadow_pool_("shadow", std::max(1, options.shadow_threads),
                   RunAtIdlePriority) {}

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
  Call call;
  call.handle = std::move(*servable);
  call.done = std::move(done);
  call.start_ns = start;
  call.unpinned = request.version.empty();
  if (metrics_ != nullptr) {
    call.metrics =
        metrics_->ForVariant(call.handle->model, call.handle->variant);
    call.metrics->inflight->Increment();
  }
  const Signature& sig = call.handle->runner->signature();
  auto inputs = MatchInputs(sig, std::move(request.inputs));
  if (!inputs.ok()) return Fail(call, inputs.status());
  auto selected = SelectOutputs(sig, request.requested_outputs);
  if (!selected.ok()) return Fail(call, selected.status());
  call.selected = std::move(*selected);

  static const BatchingConfig kUnbatched;
  const BatchingConfig& batching =
      call.handle->batching != nullptr ? *call.handle->batching : kUnbatched;
  const int64_t rows = static_cast<int64_t>(BatchSize(sig, *inputs));
  if (batching.enabled() && rows <= batching.max_batch_size &&
      sig.inputs[0].shape[0] == -1) {
    Batcher* batcher = BatcherFor(*call.handle);
    BatchTask task;
    task.runner = call.handle->runner.get();
    task.inputs = std::move(*inputs);
    task.enqueue_ns = start;
    task.deadline_ns = request.deadline_ns;
    // The task owns the call; when the queue is full it comes back here.
    auto shared = std::make_shared<Call>(std::move(call));
    task.done = [this, shared](absl::StatusOr<std::vector<HostTensor>> out,
                               const BatchInfo& info,
                               const std::vector<HostTensor>& in) {
      Finish(*shared, std::move(out), in, info);
    };
    // Long executions are split over idle workers; short ones are bound by
    // per-request costs, where fewer, larger batches win.
    const bool spread =
        shared->handle->stats->MeanComputeNs() >= kSpreadComputeNs;
    absl::Status queued = batcher->Enqueue(std::move(task), batching, spread);
    if (!queued.ok()) Fail(*shared, queued);
    return;
  }
  // Unbatched and tiny: run here, sparing the hand-offs to a worker and
  // back. Decided on the variant's mean compute time once it has some.
  const VariantStats& vs = *call.handle->stats;
  if (inline_compute_ns_ > 0 && vs.Executions() >= 8 &&
      vs.MeanComputeNs() < inline_compute_ns_) {
    return RunAlone(call, *inputs, request.deadline_ns);
  }
  // Unbatched: one request per execution, queued on the worker pool.
  if (pool_.queue_size() >= static_cast<size_t>(batching.queue_capacity)) {
    return Fail(call,
                absl::ResourceExhaustedError(absl::StrCat(
                    "the inference queue is full (", batching.queue_capacity,
                    " requests waiting); retry later")));
  }
  Queued(call);
  pool_.Schedule([this, call = std::move(call), inputs = std::move(*inputs),
                  deadline = request.deadline_ns]() mutable {
    Dequeued(call);
    RunAlone(call, inputs, deadline);
  });
}

void InferenceEngine::RunAlone(Call& call,
                               const std::vector<HostTensor>& inputs,
                               uint64_t deadline_ns) {
  BatchInfo info;
  info.queue_ns = NowNs() - call.start_ns;
  if (deadline_ns != 0 && NowNs() >= deadline_ns) {
    return Fail(
        call, absl::DeadlineExceededError(absl::StrCat(
                  "the request's deadline passed after ", info.queue_ns / 1000,
                  " us in the queue; it was not run")));
  }
  auto outputs = call.handle->runner->Run(inputs, &info.timings);
  info.first = true;
  info.requests = 1;
  info.batch_rows =
      static_cast<int64_t>(BatchSize(call.handle->runner->signature(), inputs));
  Finish(call, std::move(outputs), inputs, info);
}

void InferenceEngine::Queued(Call& call) {
  if (call.metrics != nullptr) call.metrics->queued->Increment();
  call.queued = true;
}

void InferenceEngine::Dequeued(Call& call) {
  if (call.queued && call.metrics != nullptr) {
    call.metrics->queued->Decrement();
  }
  call.queued = false;
}

void InferenceEngine::Fail(Call& call, const absl::Status& status) {
  Dequeued(call);
  call.handle->stats->RecordFailure(NowNs() - call.start_ns);
  if (call.metrics != nullptr) {
    metrics_->RecordFailure(call.handle->model, call.handle->variant,
                            absl::StatusCodeToString(status.code()).c_str());
    call.metrics->inflight->Decrement();
  }
  call.done(status);
}

void InferenceEngine::Finish(Call& call,
                             absl::StatusOr<std::vector<HostTensor>> outputs,
                             const std::vector<HostTensor>& inputs,
                             const BatchInfo& info) {
  Dequeued(call);
  if (!outputs.ok()) return Fail(call, outputs.status());
  const Servable& servable = *call.handle;
  // The shadow decision and its copies happen before answering (the
  // request's bytes die with the answer, and outputs move into it); the
  // shadow run itself happens after.
  ModelRegistry::Comparison shadow =
      call.unpinned ? registry_->CompareFor(servable.model, servable.variant)
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
  result.model = servable.model;
  result.variant = servable.variant;
  result.outputs.reserve(call.selected.size());
  for (int i : call.selected) result.outputs.push_back((*outputs)[i]);
  const uint64_t total = NowNs() - call.start_ns;
  const uint64_t rows = BatchSize(servable.runner->signature(), inputs);
  const RunTimings& t = info.timings;
  servable.stats->RecordRequest(total, info.queue_ns, t.input_ns, t.infer_ns,
                                t.output_ns, rows);
  if (info.first) {
    servable.stats->RecordExecution(info.batch_rows, t.input_ns, t.infer_ns,
                                    t.output_ns);
  }
  if (Metrics::Variant* m = call.metrics; m != nullptr) {
    m->success->Increment();
    m->request_seconds->Observe(total * 1e-9);
    m->queue_seconds->Observe(info.queue_ns * 1e-9);
    m->compute_seconds->Observe((t.input_ns + t.infer_ns + t.output_ns) * 1e-9);
    if (info.first)
      m->batch_size->Observe(static_cast<double>(info.batch_rows));
    m->inflight->Decrement();
  }
  call.done(std::move(result));
  if (shadow.run != nullptr) {
    Compare(std::move(shadow), std::move(shadow_inputs), std::move(primary));
  }
}

Batcher* InferenceEngine::BatcherFor(const Servable& servable) {
  absl::MutexLock lock(&batchers_mu_);
  auto& b = batchers_[{servable.model, servable.variant}];
  if (b == nullptr) {
    b = std::make_unique<Batcher>(
        absl::StrCat("model '", servable.model, "' version '", servable.variant,
                     "'"),
        [this](std::function<void()> fn) { pool_.Schedule(std::move(fn)); },
        pool_.num_threads(),
        [m = metrics_ != nullptr
                 ? metrics_->ForVariant(servable.model, servable.variant)
                 : nullptr](int delta) {
          if (m == nullptr) return;
          if (delta >= 0) {
            m->queued->Increment(delta);
          } else {
            m->queued->Decrement(-delta);
          }
        });
  }
  return b.get();
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
