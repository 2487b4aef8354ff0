// The request path without the network, side by side with raw LibTorch on
// the tiny model (784 -> 10 linear), one intra-op thread:
//   raw forward (frozen + optimize_for_inference), the Runner, and the
//   whole in-process path: OIP decode -> engine (routing, validation,
//   forward, statistics) -> OIP encode.
// Reports heap allocations per request (every malloc in the process is
// counted, LibTorch's and protobuf's included).
//   bazel run -c opt //server/grpc:request_path_benchmark --
//       --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/core/test_util/core_fixture.h"
#include "server/grpc/arena_allocator.h"
#include "server/grpc/oip_codec.h"
#include "server/serving/engine.h"
#include "tests/alloc_counter.h"
#include "tests/test_util.h"

namespace twinserve {
namespace {

constexpr char kModel[] = "tests/fixtures/linear.pt";

Signature LinearSignature() {
  Signature s;
  s.inputs = {{"x", DataType::kFp32, {-1, 784}}};
  s.outputs = {{"y", DataType::kFp32, {-1, 10}}};
  return s;
}

void ReportAllocations(benchmark::State& state, uint64_t allocs0,
                       uint64_t bytes0) {
  const double n = static_cast<double>(state.iterations());
  state.counters["allocs/req"] = (testing::AllocationCount() - allocs0) / n;
  state.counters["alloc_bytes/req"] = (testing::AllocatedBytes() - bytes0) / n;
}

void BM_RawLibTorch(benchmark::State& state) {
  at::set_num_threads(1);
  torch::jit::Module m = torch::jit::load(kModel);
  m.eval();
  torch::jit::Module frozen = torch::jit::freeze(m);
  m = torch::jit::optimize_for_inference(frozen);
  at::Tensor x = torch::rand({1, 784});
  c10::InferenceMode guard;
  for (int i = 0; i < 10; ++i) m.forward({x});
  const uint64_t a0 = testing::AllocationCount(),
                 b0 = testing::AllocatedBytes();
  for (auto _ : state) {
    at::Tensor y = m.forward({x}).toTensor();
    benchmark::DoNotOptimize(y.data_ptr());
  }
  ReportAllocations(state, a0, b0);
}
BENCHMARK(BM_RawLibTorch)->UseRealTime();

HostTensor Input() {
  std::string bytes(784 * 4, '\0');
  float* f = reinterpret_cast<float*>(bytes.data());
  for (int i = 0; i < 784; ++i) f[i] = (i % 13) / 13.0f;
  return HostTensor::Owned("x", DataType::kFp32, {1, 784}, bytes);
}

void BM_Runner(benchmark::State& state) {
  at::set_num_threads(1);
  auto runner = *Runner::Load(kModel, LinearSignature(), RunnerOptions{});
  const std::vector<HostTensor> in = {Input()};
  for (int i = 0; i < 10; ++i) (void)runner->Run(in, nullptr);
  const uint64_t a0 = testing::AllocationCount(),
                 b0 = testing::AllocatedBytes();
  for (auto _ : state) {
    auto out = runner->Run(in, nullptr);
    benchmark::DoNotOptimize(out->data());
  }
  ReportAllocations(state, a0, b0);
}
BENCHMARK(BM_Runner)->UseRealTime();

// decode -> engine -> encode as the gRPC handler does it. routed: the
// traffic policy routes (a weighted 50/50 split between two variants with a
// sticky routing key); pinned: the request names its version. Their
// difference is what routing costs a request. Statistics are recorded
// either way: every decision reads them.
void BM_RequestPath(benchmark::State& state, bool routed) {
  at::set_num_threads(1);
  testing::CoreFixture f;
  RegisterArgs args;
  args.name = "lin";
  args.signature = LinearSignature();
  auto registered = f.registrar->Register(args, f.Stage("linear.pt"));
  if (!registered.ok()) {
    state.SkipWithError(std::string(registered.status().message()).c_str());
    return;
  }
  if (routed) {
    TrafficPolicy policy;
    policy.kind = PolicyKind::kWeighted;
    policy.weights = {{"fp32", 50}, {"alt", 50}};
    if (!f.registrar->RegisterVariant("lin", "alt", f.Stage("linear.pt"))
             .ok() ||
        !f.traffic->SetPolicy("lin", policy, {}).ok()) {
      state.SkipWithError("cannot set up the weighted policy");
      return;
    }
  }
  ModelRegistry& registry = *f.registry;
  InferenceEngine engine(&registry, EngineOptions{});
  inference::ModelInferRequest request;
  request.set_model_name("lin");
  if (routed) {
    // A key the policy sends to fp32, so both modes run the same runner
    // ("alt", a derived variant, is served without the FP32 optimizations).
    std::string key;
    for (int i = 0; i < 100 && key.empty(); ++i) {
      auto h = registry.Acquire("lin", "", absl::StrCat("user-", i));
      if (h.ok() && h->served->variant == "fp32") {
        key = absl::StrCat("user-", i);
      }
    }
    (*request.mutable_parameters())["routing_key"].set_string_param(key);
  } else {
    request.set_model_version("fp32");
  }
  auto* t = request.add_inputs();
  t->set_name("x");
  t->set_datatype("FP32");
  t->add_shape(1);
  t->add_shape(784);
  const HostTensor x = Input();
  request.add_raw_input_contents(std::string(x.data, x.byte_size));
  // As the server does it: request and response on the call's arena.
  ArenaMessageAllocator<inference::ModelInferRequest,
                        inference::ModelInferResponse>
      arena;
  auto one = [&] {
    auto* holder = arena.AllocateMessages();
    holder->request()->CopyFrom(request);  // what gRPC's parse produces
    inference::ModelInferResponse& response = *holder->response();
    auto decoded = DecodeInferRequest(*holder->request());
    bool ok = false;
    absl::Notification done;
    engine.Infer(std::move(*decoded), [&](absl::StatusOr<InferResult> result) {
      if (result.ok()) {
        EncodeInferResponse(request, *result, &response).IgnoreError();
        ok = true;
      }
      done.Notify();
    });
    done.WaitForNotification();
    holder->Release();
    return ok;
  };
  // Past the warm-up the engine runs this tiny model inline.
  for (int i = 0; i < 50; ++i) one();
  const uint64_t a0 = testing::AllocationCount(),
                 b0 = testing::AllocatedBytes();
  for (auto _ : state) {
    if (!one()) {
      state.SkipWithError("request failed or did not run inline");
      return;
    }
  }
  ReportAllocations(state, a0, b0);
  // The same request, by stage.
  auto decoded = DecodeInferRequest(request);
  uint64_t a = testing::AllocationCount();
  for (int i = 0; i < 1000; ++i) {
    auto d = DecodeInferRequest(request);
    benchmark::DoNotOptimize(d);
  }
  state.counters["decode_allocs"] = (testing::AllocationCount() - a) / 1000.0;
  InferResult result = *engine.InferSync(*decoded);
  a = testing::AllocationCount();
  for (int i = 0; i < 1000; ++i) {
    inference::ModelInferResponse response;
    EncodeInferResponse(request, result, &response).IgnoreError();
  }
  state.counters["encode_allocs"] = (testing::AllocationCount() - a) / 1000.0;
  a = testing::AllocationCount();
  for (int i = 0; i < 1000; ++i) {
    auto* holder = arena.AllocateMessages();
    EncodeInferResponse(request, result, holder->response()).IgnoreError();
    holder->Release();
  }
  state.counters["encode_allocs_arena"] =
      (testing::AllocationCount() - a) / 1000.0;
}
BENCHMARK_CAPTURE(BM_RequestPath, routed, true)->UseRealTime();
BENCHMARK_CAPTURE(BM_RequestPath, pinned, false)->UseRealTime();

}  // namespace
}  // namespace twinserve

int main(int argc, char** argv) {
  // As the server: no lock-order checks in Debian's Abseil (see main.cc).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
