// Fuzzes the manifest parser: any text gives a record or DATA_LOSS, never a
// crash or an escaping exception; a record it accepts references only plain
// file names inside the model folder and survives its round trip.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/store/records.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<twinserve::ModelRecord> r = twinserve::FromManifest(text);
  if (!r.ok()) {
    if (!absl::IsDataLoss(r.status())) std::abort();
    return 0;
  }
  for (const std::string& f : twinserve::ReferencedFiles(*r)) {
    if (f.empty() || f.find('/') != std::string::npos || f[0] == '.') {
      std::abort();
    }
  }
  const std::string once = twinserve::ToManifest(*r);
  absl::StatusOr<twinserve::ModelRecord> back = twinserve::FromManifest(once);
  if (!back.ok() || twinserve::ToManifest(*back) != once) std::abort();
  return 0;
}
