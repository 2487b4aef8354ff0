// Fuzzes the calibration-set reader (the store hands it whatever is on
// disk): any bytes give a set or DATA_LOSS, never a crash; a set it
// accepts slices within its bytes and survives its round trip.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "quant/calibration_set.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using twinserve::CalibrationSet;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<CalibrationSet> set = CalibrationSet::Parse(bytes);
  if (!set.ok()) {
    if (!absl::IsDataLoss(set.status())) std::abort();
    return 0;
  }
  const int64_t n = set->num_samples();
  if (n < 0 ||
      (set->has_labels() && static_cast<int64_t>(set->labels().size()) != n)) {
    std::abort();
  }
  for (int64_t begin : {int64_t{0}, n / 2}) {
    for (const twinserve::HostTensor& t : set->Slice(begin, n)) {
      if (twinserve::ByteCount(t.shape, t.dtype) !=
          static_cast<int64_t>(t.byte_size)) {
        std::abort();
      }
      // Touch every byte: a view past the set's data fails under ASan.
      volatile char sink = 0;
      for (size_t i = 0; i < t.byte_size; ++i) sink ^= t.data[i];
      (void)sink;
    }
  }
  const std::string once = set->Serialize();
  absl::StatusOr<CalibrationSet> back = CalibrationSet::Parse(once);
  if (!back.ok() || back->Serialize() != once) std::abort();
  return 0;
}
