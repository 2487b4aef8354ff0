// Fuzzes the Open Inference Protocol codec with any ModelInferRequest a
// client could send: decoding gives tensors whose bytes lie inside the
// message or a registered shared-memory region, or INVALID_ARGUMENT; the
// response to a decoded request (its inputs echoed as outputs, requested
// ones with their parameters, classification included) encodes without a
// crash, and writes into shared memory stay inside their regions (ASan).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/grpc/oip_codec.h"

namespace {

using twinserve::SharedMemoryManager;

// Two regions of one 4 KiB object, owned by the principal "fuzz"; the
// object is unlinked at once (the mappings stay), so nothing is left behind.
const SharedMemoryManager& Regions() {
  static const SharedMemoryManager* manager = [] {
    auto* m = new SharedMemoryManager("/twinserve_fuzz");
    const std::string key = absl::StrCat("/twinserve_fuzz_", getpid());
    const int fd = shm_open(key.c_str(), O_CREAT | O_RDWR, 0600);
    if (fd < 0 || ftruncate(fd, 4096) != 0) std::abort();
    close(fd);
    if (!m->Register({"fuzz", "r", key, 0, 4096}).ok() ||
        !m->Register({"fuzz", "r2", key, 1024, 1024}).ok()) {
      std::abort();
    }
    shm_unlink(key.c_str());
    return m;
  }();
  return *manager;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  inference::ModelInferRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  const twinserve::SharedMemoryScope scope(&Regions(), "fuzz");
  std::shared_ptr<twinserve::SharedMemoryUse> use;
  absl::StatusOr<twinserve::InferRequest> decoded =
      twinserve::DecodeInferRequest(request, &scope, &use);
  if (!decoded.ok()) {
    if (!absl::IsInvalidArgument(decoded.status()) &&
        !absl::IsNotFound(decoded.status())) {
      std::abort();
    }
    return 0;
  }
  twinserve::InferResult result;
  result.model = decoded->model;
  result.variant = "fp32";
  for (const twinserve::HostTensor& in : decoded->inputs) {
    // Raw bytes are checked against the shape by the engine, as here; what
    // it refuses never runs.
    const absl::Status valid =
        twinserve::ValidateTensor({in.name, in.dtype, in.shape}, in);
    if (!valid.ok()) {
      if (!absl::IsInvalidArgument(valid)) std::abort();
      return 0;
    }
    volatile char sink = 0;  // a view past its bytes fails under ASan
    for (size_t i = 0; i < in.byte_size; ++i) sink ^= in.data[i];
    (void)sink;
  }
  // Outputs as the engine would answer: the requested names in order (or
  // the inputs' own), each carrying one of the inputs' tensors.
  const size_t n = decoded->inputs.size();
  if (n > 0) {
    if (decoded->requested_outputs.empty()) {
      result.outputs = decoded->inputs;
    } else {
      for (size_t i = 0; i < decoded->requested_outputs.size(); ++i) {
        twinserve::HostTensor t = decoded->inputs[i % n];
        t.name = decoded->requested_outputs[i];
        result.outputs.push_back(t);
      }
    }
  }
  inference::ModelInferResponse response;
  const absl::Status s =
      twinserve::EncodeInferResponse(request, result, &response, use.get());
  if (s.ok() &&
      response.outputs_size() != response.raw_output_contents_size()) {
    std::abort();
  }
  return 0;
}
