// Fuzzes the .npy reader: any bytes give a tensor or INVALID_ARGUMENT,
// never a crash or an out-of-bounds read; what parses survives its round
// trip through SerializeNpy unchanged.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "client/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using twinserve::HostTensor;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<HostTensor> t = twinserve::ParseNpy(bytes, "x");
  if (!t.ok()) {
    if (!absl::IsInvalidArgument(t.status())) std::abort();
    return 0;
  }
  if (twinserve::ByteCount(t->shape, t->dtype) !=
      static_cast<int64_t>(t->byte_size)) {
    std::abort();
  }
  absl::StatusOr<std::string> again = twinserve::SerializeNpy(*t);
  if (!again.ok()) std::abort();
  absl::StatusOr<HostTensor> u = twinserve::ParseNpy(*again, "x");
  if (!u.ok() || u->dtype != t->dtype || u->shape != t->shape ||
      u->byte_size != t->byte_size ||
      std::memcmp(u->data, t->data, t->byte_size) != 0) {
    std::abort();
  }
  return 0;
}
