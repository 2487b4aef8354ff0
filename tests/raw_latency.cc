// Raw LibTorch forward latency of two TorchScript files side by side, the
// reference for "through the server" ratios: FP32 frozen and
// optimize_for_inference'd (LibTorch's best FP32 path), the other file as
// saved (a quantized module is already finalized). One intra-op thread;
// runs alternate between the two so both see the same machine state.
//   raw_latency --a=fp32.pt --b=int8.pt --shape=1,3,224,224 [--runs=100]
//               [--batch=8]
// Prints the median ms of each and the ratio a/b; with --batch, also each
// file's per-image cost at that batch size and its ratio to batch 1 (what
// batching can gain on this CPU).
#include <ATen/Parallel.h>
#include <torch/csrc/jit/passes/freeze_module.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

ABSL_FLAG(std::string, a, "",
          "FP32 TorchScript file (optimized for inference)");
ABSL_FLAG(std::string, b, "", "second file, run as saved (e.g. INT8)");
ABSL_FLAG(std::string, shape, "1,3,224,224", "input shape");
ABSL_FLAG(int, runs, 100, "timed runs of each");
ABSL_FLAG(int, threads, 1, "intra-op threads");
ABSL_FLAG(int, batch, 0,
          "also time this batch size (dim 0 of --shape replaced) and print "
          "the per-image cost at batch 1 / at this batch");

namespace {

double MedianMs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  at::set_num_threads(absl::GetFlag(FLAGS_threads));
  std::vector<int64_t> shape;
  for (absl::string_view d : absl::StrSplit(absl::GetFlag(FLAGS_shape), ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(d, &v)) {
      std::fprintf(stderr, "bad --shape\n");
      return 2;
    }
    shape.push_back(v);
  }
  torch::jit::Module a = torch::jit::load(absl::GetFlag(FLAGS_a));
  a.eval();
  torch::jit::Module frozen = torch::jit::freeze(a);
  a = torch::jit::optimize_for_inference(frozen);
  torch::jit::Module b = torch::jit::load(absl::GetFlag(FLAGS_b));
  b.eval();
  c10::InferenceMode guard;
  at::Tensor x = torch::rand(shape);
  for (int i = 0; i < 5; ++i) {
    a.forward({x});
    b.forward({x});
  }
  std::vector<double> ta, tb;
  for (int i = 0; i < absl::GetFlag(FLAGS_runs); ++i) {
    for (int which = 0; which < 2; ++which) {
      const auto t0 = std::chrono::steady_clock::now();
      (which == 0 ? a : b).forward({x});
      const double ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - t0)
                            .count();
      (which == 0 ? ta : tb).push_back(ms);
    }
  }
  const double ma = MedianMs(ta), mb = MedianMs(tb);
  std::printf("raw LibTorch median: a %.3f ms, b %.3f ms, a/b %.2fx\n", ma, mb,
              ma / mb);
  const int batch = absl::GetFlag(FLAGS_batch);
  if (batch > 1) {
    std::vector<int64_t> big = shape;
    big[0] = batch;
    at::Tensor xb = torch::rand(big);
    for (int i = 0; i < 2; ++i) {
      a.forward({xb});
      b.forward({xb});
    }
    std::vector<double> ba, bb;
    const int runs = std::max(5, absl::GetFlag(FLAGS_runs) / batch);
    for (int i = 0; i < runs; ++i) {
      for (int which = 0; which < 2; ++which) {
        const auto t0 = std::chrono::steady_clock::now();
        (which == 0 ? a : b).forward({xb});
        const double ms = std::chrono::duration<double, std::milli>(
                              std::chrono::steady_clock::now() - t0)
                              .count();
        (which == 0 ? ba : bb).push_back(ms / batch);
      }
    }
    const double pa = MedianMs(ba), pb = MedianMs(bb);
    std::printf(
        "raw LibTorch per image: a batch 1 %.3f ms, batch %d %.3f ms, "
        "a_b1/b%d %.2fx\n",
        ma, batch, pa, batch, ma / pa);
    std::printf(
        "raw LibTorch per image: b batch 1 %.3f ms, batch %d %.3f ms, "
        "b_b1/b%d %.2fx\n",
        mb, batch, pb, batch, mb / pb);
  }
  return 0;
}
