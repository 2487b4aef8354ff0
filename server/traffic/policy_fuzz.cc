// Fuzzes policy parsing and validation: any JSON gives a policy or an
// error, never a crash; a policy that validates keeps its meaning through
// its stored form and splits traffic into finite shares that sum to 1.
// History parsing gets the same bytes.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "server/traffic/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using twinserve::TrafficPolicy;
  const std::string json(reinterpret_cast<const char*>(data), size);
  (void)twinserve::HistoryFromJson(json);
  absl::StatusOr<TrafficPolicy> p = twinserve::PolicyFromJson(json);
  if (!p.ok()) return 0;
  const std::set<std::string> variants = {"fp32", "int8", "int8-b", "int4"};
  if (!twinserve::ValidatePolicy(*p, variants).ok()) return 0;
  const std::string once = twinserve::PolicyToJson(*p);
  absl::StatusOr<TrafficPolicy> back = twinserve::PolicyFromJson(once);
  if (!back.ok() || twinserve::PolicyToJson(*back) != once ||
      !twinserve::ValidatePolicy(*back, variants).ok()) {
    std::abort();
  }
  double sum = 0;
  for (const auto& [variant, share] : twinserve::TrafficShares(*p)) {
    if (!std::isfinite(share) || share < 0 || variants.count(variant) == 0) {
      std::abort();
    }
    sum += share;
  }
  if (std::fabs(sum - 1.0) > 1e-9) std::abort();
  return 0;
}
