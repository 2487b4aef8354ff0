// Fuzzes the IDX reader: any bytes give a UINT8 tensor whose size matches
// its dims, or INVALID_ARGUMENT; images convert to floats in [0, 1].
#include <cstdint>
#include <cstdlib>

#include "client/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using twinserve::HostTensor;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<HostTensor> t = twinserve::ParseIdx(bytes, "fuzz");
  if (!t.ok()) {
    if (!absl::IsInvalidArgument(t.status())) std::abort();
    return 0;
  }
  if (t->dtype != twinserve::DataType::kUint8 ||
      twinserve::ElementCount(t->shape) != static_cast<int64_t>(t->byte_size)) {
    std::abort();
  }
  if (t->shape.size() == 3) {
    HostTensor f = twinserve::ImagesToFloat(*t);
    if (f.byte_size != t->byte_size * sizeof(float)) std::abort();
    const float* v = reinterpret_cast<const float*>(f.data);
    for (size_t i = 0; i < t->byte_size; ++i) {
      if (!(v[i] >= 0.0f && v[i] <= 1.0f)) std::abort();
    }
  }
  return 0;
}
