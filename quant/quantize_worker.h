// Quantization in a child process (the `twinserve_quantize` binary).
//
// A job's LibTorch work (graph passes, calibration, candidate models,
// evaluation) leaves memory behind in the process that runs it: glibc's
// arenas, LibTorch's compilation units and caches. Run in the server, each
// job grew the resident set by megabytes for good. Run in a child, it all
// goes when the child exits; a crash in LibTorch's passes also fails the
// job instead of the server. The server loads only the finished artifact.
//
// Protocol: the parent writes the job as JSON to a file and runs
// `twinserve_quantize JOB_FILE`. The child prints one line per event on
// stdout, tab-separated: "progress\tSTAGE\tDONE\tTOTAL", then either
// "result\tREPORT_JSON" (exit 0) or "error\tCODE\tMESSAGE" (exit 1). It
// kills itself when its parent dies.
//
// LibTorch-free header.
#ifndef TWINSERVE_QUANT_QUANTIZE_WORKER_H_
#define TWINSERVE_QUANT_QUANTIZE_WORKER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "quant/quantize_options.h"
#include "quant/quantizer.h"
#include "quant/report.h"
#include "server/common/signature.h"

namespace twinserve {

// A calibration (or evaluation) set as the store keeps it.
struct StoredSetFile {
  std::string name;
  std::string path;
  std::string sha256;  // checked before the set is used
};

struct WorkerJob {
  std::string fp32_path;  // the scripted FP32 TorchScript, as stored
  uint64_t fp32_serialized_bytes = 0;
  Signature signature;
  StoredSetFile calibration;
  StoredSetFile evaluation;  // optional: empty path
  QuantizeOptions options;
  std::string output_path;  // where the child writes the INT8 TorchScript
  // The FP32 runner the child evaluates against is loaded as the server
  // loads the served one.
  bool optimize_fp32 = true;
  int intra_op_threads = 1;
  bool allow_unsafe_ops = false;  // the server's --allow_unsafe_ops
};

// How a server runs its quantization jobs.
struct QuantizeWorkerOptions {
  std::string binary;  // the worker; empty: in the server's own process
  int intra_op_threads = 1;
  bool optimize_fp32 = true;
};

std::string WorkerJobToJson(const WorkerJob& job);
// INVALID_ARGUMENT naming the field that is missing or malformed.
absl::StatusOr<WorkerJob> WorkerJobFromJson(const std::string& json);

std::string QuantizeOptionsToJson(const QuantizeOptions& options);
absl::StatusOr<QuantizeOptions> QuantizeOptionsFromJson(
    const std::string& json);

// Runs `worker_binary` on `job` (written next to job.output_path) and
// returns the report; the artifact is at job.output_path. Progress lines go
// to `progress`. When *cancel turns true the child is killed and the result
// is CANCELLED. The child's own errors come back with their code and
// message; a child that dies without a result is INTERNAL naming its exit
// status or signal; a binary that cannot run is FAILED_PRECONDITION.
absl::StatusOr<QuantizationReport> QuantizeInWorker(
    const std::string& worker_binary, const WorkerJob& job,
    const std::function<void(const QuantizeProgress&)>& progress,
    const std::atomic<bool>* cancel);

// The worker's side: runs the job in this process and prints the protocol
// lines to stdout. Returns the process exit code.
int RunWorkerJob(const std::string& job_file);

// `twinserve_quantize` beside the running executable, or "" if absent.
std::string DefaultWorkerBinary();

}  // namespace twinserve

#endif  // TWINSERVE_QUANT_QUANTIZE_WORKER_H_
