// Runner: one loaded TorchScript module and the only place that calls
// LibTorch's forward. Every LibTorch exception is caught here and turned into
// an absl::Status, so no other module needs to know LibTorch throws.
//
// Thread-safe: Run() may be called concurrently (TorchScript's executor is
// reentrant for inference). The header is LibTorch-free so that the registry
// and the gRPC layer compile quickly.
#ifndef TWINSERVE_SERVER_RUNTIME_RUNNER_H_
#define TWINSERVE_SERVER_RUNTIME_RUNNER_H_

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/common/signature.h"
#include "server/common/tensor.h"

namespace torch {
namespace jit {
struct Module;
}  // namespace jit
}  // namespace torch

namespace twinserve {

struct RunnerOptions {
  // Freeze and apply torch::jit::optimize_for_inference: LibTorch's fastest
  // FP32 path (oneDNN convolutions). Every INT8 speedup is measured against
  // it. If the model refuses the pass, the runner falls back to freezing
  // only, then to the plain module, and says so in execution_path().
  bool optimize = true;
  // Forward passes on an example input after loading, so the profiling
  // executor has specialized the graph before the first request.
  int warmup_runs = 2;
};

// Time spent in each phase of one Run, in nanoseconds (Triton's split).
struct RunTimings {
  uint64_t input_ns = 0;
  uint64_t infer_ns = 0;
  uint64_t output_ns = 0;
};

class Runner {
 public:
  // Loads the TorchScript file at `path`, prepares it for inference and
  // checks it against `signature` by running a forward pass on zeros shaped
  // like the inputs (free dims = 1).
  // Errors: INVALID_ARGUMENT if the file is not TorchScript, forward fails on
  // the example, or its outputs differ from the declared outputs in count,
  // datatype or shape; the message says which.
  static absl::StatusOr<std::unique_ptr<Runner>> Load(
      const std::string& path, const Signature& signature,
      const RunnerOptions& options);

  virtual ~Runner() = default;

  // REQUIRES: inputs are ordered as signature().inputs and each passed
  // ValidateTensor. Returns one HostTensor per declared output, named as
  // declared. Errors: INTERNAL with the first line of LibTorch's message
  // when forward throws.
  virtual absl::StatusOr<std::vector<HostTensor>> Run(
      const std::vector<HostTensor>& inputs, RunTimings* timings) const = 0;

  virtual const Signature& signature() const = 0;
  // Bytes held by the model's parameters and buffers as loaded, before
  // freezing. 0 for a module saved frozen (a quantized one): the quantizer
  // reports those.
  virtual uint64_t parameter_bytes() const = 0;
  // "frozen+optimized", "frozen" or "scripted".
  virtual const std::string& execution_path() const = 0;
};

// The line of a LibTorch exception worth showing a client: the first line
// of its message without the C++ backtrace, or for an exception raised
// inside TorchScript (which arrives with a TorchScript traceback) the last
// line, which says what went wrong.
std::string TorchErrorMessage(const std::exception& e);

// Sets LibTorch's intra-op and inter-op thread counts once for the process,
// and the BLAS library's (OpenBLAS) to the intra-op count: LibTorch's own
// setting does not reach it, and it would otherwise run every FP32 GEMM on
// all cores. REQUIRES: called before any Runner runs.
void ConfigureTorchThreads(int intra_op_threads, int inter_op_threads);

// The BLAS library's thread count (OpenBLAS), or -1 if it cannot tell.
int BlasThreads();

// Bounds the two caches of oneDNN primitives that LibTorch fills as it runs
// models (oneDNN's own primitive cache and ideep's LRU), to `capacity`
// entries each (LibTorch's default is 1,024). Primitives are keyed by shape
// and, for INT8, by scales, so every new quantized variant and batch size
// adds entries that outlive the variant: measured here, about 1 MB per
// distinct INT8 Fashion CNN loaded and run, until the caches are full. Too
// small costs speed (the frozen FP32 CNN ran 3.3x slower with none).
// REQUIRES: called before any model runs (LibTorch reads it once).
void LimitOneDnnCaches(int capacity);

// Drops the functions of `module`'s CompilationUnit so that its graphs and
// the constants they hold (a frozen module's weights) are freed: LibTorch
// otherwise keeps them through a reference cycle (pytorch#96726).
// REQUIRES: the module is being discarded, and no live module shares its
// unit (modules loaded from one file share it with their clones).
void ReleaseCompilationUnit(torch::jit::Module& module);

// Selects oneDNN for quantized kernels (Debian's LibTorch has no fbgemm;
// qnnpack is several times slower on x86). Call once at startup.
void UseOneDnnQuantizedEngine();

}  // namespace twinserve

#endif  // TWINSERVE_SERVER_RUNTIME_RUNNER_H_
