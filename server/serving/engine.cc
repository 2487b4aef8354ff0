#include "server/serving/engine.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <future>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/drift.h"
#include "server/common/clock.h"
#include "server/common/status_macros.h"

namespace twinserve {
namespace {

// Indices of the outputs a request wants (inline: no allocation).
using OutputIndices = absl::InlinedVector<int, 4>;

std::string SpecNames(const std::vector<TensorSpec>& specs) {
  return absl::StrJoin(specs, ", ", [](std::string* out, const TensorSpec& s) {
    absl::StrAppend(out, s.name);
  });
}

// Inferences in one request: dim 0 when the model's first input has a free
// leading (batch) dimension, else 1.
int64_t Rows(const Signature& sig, const std::vector<HostTensor>& in) {
  if (!sig.inputs.empty() && !sig.inputs[0].shape.empty() &&
      sig.inputs[0].shape[0] == -1 && !in.empty() && !in[0].shape.empty()) {
    return in[0].shape[0];
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

// Comparison runs must never delay answers: under SCHED_IDLE a thread gets
// a core only when no other thread wants it, and any waking request-path
// thread preempts it at once (nice 19 still takes time slices).
void RunAtIdlePriority() {
  sched_param param{};
  if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &param) != 0) {
    setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
  }
}

}  // namespace

// One request between routing and its answer.
struct InferenceEngine::Call {
  Acquired acquired;
  OutputIndices selected;  // in response order
  InferCallback done;
  uint64_t start_ns = 0;
  uint64_t reserved_bytes = 0;  // counted in inflight_bytes_
};

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

InferenceEngine::InferenceEngine(const ServableRouter* router,
                                 EngineOptions options)
    : router_(router),
      shadow_queue_(options.shadow_queue),
      max_inflight_bytes_(options.max_inflight_bytes),
      shadow_pool_("shadow", std::max(1, options.shadow_threads),
                   RunAtIdlePriority) {}

InferenceEngine::~InferenceEngine() = default;

void InferenceEngine::Infer(InferRequest request, InferCallback done) {
  const uint64_t start = NowNs();
  auto acquired =
      router_->Acquire(request.model, request.version, request.routing_key);
  if (!acquired.ok()) {
    const int code = static_cast<int>(acquired.status().code());
    if (code >= 0 && code < static_cast<int>(unrouted_.size())) {
      unrouted_[code].fetch_add(1, std::memory_order_relaxed);
    }
    done(acquired.status());
    return;
  }
  auto call = std::make_shared<Call>();
  call->acquired = std::move(*acquired);
  call->done = std::move(done);
  call->start_ns = start;
  const Servable& served = *call->acquired.served;
  served.stats->AddInflight(1);
  const Signature& sig = served.runner->signature();
  auto inputs = MatchInputs(sig, std::move(request.inputs));
  if (!inputs.ok()) return Fail(*call, inputs.status());
  auto selected = SelectOutputs(sig, request.requested_outputs);
  if (!selected.ok()) return Fail(*call, selected.status());
  call->selected = std::move(*selected);
  if (max_inflight_bytes_ > 0) {
    uint64_t bytes = 0;
    for (const HostTensor& t : *inputs) bytes += t.byte_size;
    const uint64_t before = inflight_bytes_.fetch_add(bytes);
    call->reserved_bytes = bytes;
    if (before + bytes > max_inflight_bytes_ && before > 0) {
      // One request alone is always admitted (its size is bounded by the
      // message limit); beyond that, bytes decide.
      return Fail(
          *call,
          absl::ResourceExhaustedError(absl::StrCat(
              "requests in flight hold ", before, " input bytes; this one's ",
              bytes, " would pass --max_inflight_bytes=", max_inflight_bytes_,
              "; retry later")));
    }
  }

  Task task;
  task.rows = Rows(sig, *inputs);
  task.inputs = std::move(*inputs);
  task.enqueue_ns = start;
  task.deadline_ns = request.deadline_ns;
  task.done = [this, call](absl::StatusOr<std::vector<HostTensor>> out,
                           const ExecutionInfo& info,
                           const std::vector<HostTensor>& in) {
    Finish(*call, std::move(out), info, in);
  };
  absl::Status submitted = served.scheduler->Submit(std::move(task));
  if (!submitted.ok()) Fail(*call, submitted);
}

void InferenceEngine::Fail(Call& call, const absl::Status& status) {
  VariantStats& stats = *call.acquired.served->stats;
  stats.RecordFailure(status.code(), NowNs() - call.start_ns);
  stats.AddInflight(-1);
  call.done(status);
  inflight_bytes_.fetch_sub(call.reserved_bytes);
  call.reserved_bytes = 0;
}

void InferenceEngine::Finish(Call& call,
                             absl::StatusOr<std::vector<HostTensor>> outputs,
                             const ExecutionInfo& info,
                             const std::vector<HostTensor>& inputs) {
  if (!outputs.ok()) return Fail(call, outputs.status());
  const Servable& served = *call.acquired.served;
  // The comparison's copies happen before answering (the request's bytes
  // die with the answer, and outputs move into it); its run happens after.
  std::vector<HostTensor> compare_inputs;
  HostTensor primary;
  if (call.acquired.comparison != nullptr) {
    compare_inputs.reserve(inputs.size());
    for (const HostTensor& t : inputs) {
      compare_inputs.push_back(HostTensor::Owned(
          t.name, t.dtype, t.shape, std::string(t.data, t.byte_size)));
    }
    primary = (*outputs)[0];  // shares the tensor's storage
  }
  InferResult result;
  result.model = served.model;
  result.variant = served.variant;
  result.outputs.reserve(call.selected.size());
  for (int i : call.selected) result.outputs.push_back((*outputs)[i]);
  RequestTiming timing;
  timing.total_ns = NowNs() - call.start_ns;
  timing.queue_ns = info.queue_ns;
  timing.compute = info.timings;
  timing.rows = Rows(served.runner->signature(), inputs);
  served.stats->RecordSuccess(timing);
  if (info.first) served.stats->RecordExecution(info.batch_rows, info.timings);
  served.stats->AddInflight(-1);
  call.done(std::move(result));  // encodes the answer: bytes still held
  inflight_bytes_.fetch_sub(call.reserved_bytes);
  call.reserved_bytes = 0;
  if (call.acquired.comparison != nullptr) {
    Compare(call.acquired, std::move(compare_inputs), std::move(primary));
  }
}

void InferenceEngine::Compare(const Acquired& acquired,
                              std::vector<HostTensor> inputs,
                              HostTensor served) {
  // Drift is the candidate's: the comparison's when the baseline served.
  std::shared_ptr<VariantStats> candidate = acquired.served_is_baseline
                                                ? acquired.comparison->stats
                                                : acquired.served->stats;
  if (shadow_pool_.queue_size() >= shadow_queue_) {
    candidate->RecordComparisonDropped();
    return;
  }
  shadow_pool_.Schedule([other = acquired.comparison,
                         baseline_served = acquired.served_is_baseline,
                         candidate = std::move(candidate),
                         inputs = std::move(inputs),
                         served = std::move(served)]() {
    auto out = other->runner->Run(inputs, nullptr);
    if (!out.ok() || out->empty()) return;
    const HostTensor& mine = (*out)[0];
    if (mine.dtype != DataType::kFp32 || served.dtype != DataType::kFp32 ||
        mine.byte_size != served.byte_size || mine.shape.empty()) {
      return;
    }
    const HostTensor& baseline = baseline_served ? served : mine;
    const HostTensor& cand = baseline_served ? mine : served;
    const int64_t rows = mine.shape.size() > 1 ? mine.shape[0] : 1;
    const int64_t cols = ElementCount(mine.shape) / std::max<int64_t>(1, rows);
    candidate->RecordComparison(
        CompareRows(reinterpret_cast<const float*>(baseline.data),
                    reinterpret_cast<const float*>(cand.data), rows, cols));
  });
}

std::map<absl::StatusCode, uint64_t> InferenceEngine::UnroutedFailures() const {
  std::map<absl::StatusCode, uint64_t> out;
  for (size_t c = 0; c < unrouted_.size(); ++c) {
    if (const uint64_t n = unrouted_[c].load(); n > 0) {
      out[static_cast<absl::StatusCode>(c)] = n;
    }
  }
  return out;
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
